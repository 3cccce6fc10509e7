// The browser the UI tests drive: Debian's Chromium, headless, through playwright-core.
import { chromium } from "playwright-core";

export function launchBrowser() {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

// A page (1100x750) that records every Content-Security-Policy violation in
// window.kexaCspViolations ("directive blocked-URI"), from before the UI's first script runs.
export async function newRecordingPage(browser) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 750 } });
  await page.addInitScript(() => {
    window.kexaCspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) => window.kexaCspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  return page;
}

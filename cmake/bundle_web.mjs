// Builds the web UI's files for embedding (run at build time by CMake): web/app.js and
// web/style.css bundled by esbuild with the npm libraries they import, web/index.html as it is,
// and licenses.txt, the license of every npm package that went into the bundle.
// Usage: node cmake/bundle_web.mjs WEB_DIR OUT_DIR (from the source root, whose node_modules
// holds package.json's devDependencies: `npm install`, which scripts/setup runs).
import fs from "node:fs";
import path from "node:path";

const [webDir, outDir] = process.argv.slice(2);
if (!webDir || !outDir) {
  console.error("usage: node cmake/bundle_web.mjs WEB_DIR OUT_DIR");
  process.exit(2);
}
let esbuild;
try {
  esbuild = await import("esbuild");
} catch (e) {
  console.error(`bundle_web: esbuild is not installed (${e.message}); run \`npm install\` in the source root (scripts/setup does)`);
  process.exit(1);
}

fs.mkdirSync(outDir, { recursive: true });
const result = await esbuild.build({
  entryPoints: [path.join(webDir, "app.js"), path.join(webDir, "style.css")],
  outdir: outDir,
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  charset: "utf8",
  legalComments: "none",  // the full license texts go to licenses.txt instead
  metafile: true,
  logLevel: "warning",
}).catch(() => process.exit(1));  // esbuild has printed the errors
fs.copyFileSync(path.join(webDir, "index.html"), path.join(outDir, "index.html"));

// Every package any bundled file came from, with its license text.
const packages = new Map();
for (const input of Object.keys(result.metafile.inputs)) {
  const m = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
  if (!m) continue;
  const dir = input.slice(0, m.index + m[0].length);
  packages.set(m[1], dir);
}
let licenses = "The kexa web UI bundles these npm packages; their licenses follow.\n";
for (const name of [...packages.keys()].sort()) {
  const dir = packages.get(name);
  const meta = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
  const file = fs.readdirSync(dir).find((f) => /^(licen[sc]e|copying)([-.][\w.-]*)?$/i.test(f));
  if (!file) {
    console.error(`bundle_web: ${name} ${meta.version} has no license file; refusing to bundle it without one`);
    process.exit(1);
  }
  licenses += `\n==== ${name} ${meta.version} (${meta.license}) ====\n\n` + fs.readFileSync(path.join(dir, file), "utf8").trimEnd() + "\n";
}
fs.writeFileSync(path.join(outDir, "licenses.txt"), licenses);

// Logit dumps (little-endian float32 [positions x vocab]) as the llama.cpp comparisons read them.
import fs from "node:fs";

// Every comparison the suites make is false for NaN (NaN > tol, Math.max(x, NaN)), so a NaN or
// infinite logit on either side would pass them: it fails here instead.
export function readLogits(path, vocab) {
  const b = fs.readFileSync(path);
  if (b.length % (4 * vocab) !== 0) throw new Error(`${path}: ${b.length} bytes is not a whole number of rows of ${vocab} floats`);
  const rows = new Float32Array(b.buffer, b.byteOffset, b.length / 4);
  const bad = rows.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) {
    console.log(`FAIL ${path}: non-finite logit ${rows[bad]} at position ${Math.floor(bad / vocab)}, token ${bad % vocab}`);
    process.exit(1);
  }
  return rows;
}

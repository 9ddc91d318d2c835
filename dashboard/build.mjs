// Builds the dashboard's page into dist/: one JS bundle, one CSS file, index.html.
// `cargo build` embeds dist/ into the berth binary (crates/dashboard/build.rs).
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";

const dev = process.argv.includes("--dev");
rmSync("dist", { recursive: true, force: true });
mkdirSync("dist", { recursive: true });
await esbuild.build({
  entryPoints: { app: "src/main.js", style: "src/style.css" },
  bundle: true,
  minify: !dev,
  sourcemap: false,
  format: "esm",
  target: ["es2022"],
  outdir: "dist",
  legalComments: "linked",
  logLevel: "info",
});
copyFileSync("index.html", "dist/index.html");

#!/usr/bin/env node
// `npm test`: builds the package, then runs every test/*.test.mjs with node's test runner,
// one file at a time, against the agentwire binary ($AGENTWIRE_BIN, else the workspace's
// target/debug/agentwire; `cargo test -p agentwire-cli --test typescript_client` passes the
// one cargo built). Node 20 gets its global WebSocket from --experimental-websocket.
//
//   npm test                       # everything
//   npm test -- test/client.test.mjs   # some files
import { execFileSync, spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
// Build, then type-check the compile-time tests against the built declarations.
for (const project of ["tsconfig.json", "test/tsconfig.json"]) {
  execFileSync(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", project], {
    cwd: root,
    stdio: "inherit",
  });
}
const chosen = process.argv.slice(2);
const files =
  chosen.length > 0
    ? chosen
    : readdirSync(join(root, "test"))
        .filter((name) => name.endsWith(".test.mjs"))
        .sort()
        .map((name) => join("test", name));
const major = Number(process.versions.node.split(".")[0]);
const flags = major < 22 ? ["--experimental-websocket"] : [];
const result = spawnSync(process.execPath, [...flags, "--test", "--test-concurrency=1", ...files], {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, NODE_OPTIONS: [process.env.NODE_OPTIONS, ...flags].filter(Boolean).join(" ") },
});
process.exit(result.status ?? 1);

// The dev console the server embeds is what this package's sources build to today.
import assert from "node:assert/strict";
import { test } from "node:test";

import { differences } from "../scripts/build-console.mjs";

test("crates/agentwire-server/console/ matches a fresh build (else run npm run build:console)", async () => {
  assert.deepEqual(await differences(), []);
});

// The committed types are what the generator makes of docs/schema/*.json today.
import assert from "node:assert/strict";
import { test } from "node:test";

import { stale } from "../scripts/generate-types.mjs";

test("src/generated/ matches docs/schema/ (else run npm run generate)", async () => {
  assert.deepEqual(await stale(), []);
});

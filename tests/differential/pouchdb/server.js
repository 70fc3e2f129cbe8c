// A long-lived PouchDB (pouchdb-find over the in-memory adapter) speaking JSON lines on
// stdin/stdout, for tests/differential/test_mango_pouchdb.py. One request per line:
//   {"op": "load", "docs": [...], "indexes": [["field", ...], ...]}  -> {"ok": true}
//   {"op": "find", "query": {...}}                      -> {"ids": [...], "docs": [...]} | {"error": "..."}
// "load" replaces the database, so each hypothesis example starts from nothing.
"use strict";
const PouchDB = require("pouchdb-core")
  .plugin(require("pouchdb-adapter-memory"))
  .plugin(require("pouchdb-find"));
const readline = require("readline");

let db = null;
let serial = 0;

async function handle(request) {
  if (request.op === "load") {
    if (db !== null) {
      await db.destroy();
    }
    db = new PouchDB(`mango${serial++}`, { adapter: "memory" });
    await db.bulkDocs(request.docs);
    for (const fields of request.indexes) {
      await db.createIndex({ index: { fields } });
    }
    return { ok: true };
  }
  if (request.op === "find") {
    try {
      const result = await db.find(request.query);
      return { ids: result.docs.map((doc) => doc._id), docs: result.docs };
    } catch (err) {
      return { error: String((err && (err.message || err.reason)) || err) };
    }
  }
  return { error: `unknown op ${request.op}` };
}

const lines = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
lines.on("line", (line) => {
  queue = queue.then(async () => {
    let reply;
    try {
      reply = await handle(JSON.parse(line));
    } catch (err) {
      reply = { error: `server: ${err && err.stack ? err.stack : err}` };
    }
    process.stdout.write(JSON.stringify(reply) + "\n");
  });
});
lines.on("close", () => {
  queue.then(() => process.exit(0));
});

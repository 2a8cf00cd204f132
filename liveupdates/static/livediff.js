/* Applying a story diff (a port of liveupdates/diff/engine.py) and turning it into what to draw.
 *
 * Pure: no DOM, no network. The server sends word runs for edited paragraphs and for a changed
 * headline, so nothing here computes a word diff.
 */

// Reader-visible fields other than paragraphs; must match DIFF_FIELDS in liveupdates/diff.
const DIFF_FIELDS = ["title", "url", "summary", "authors", "published", "updated"];
const NULLABLE_FIELDS = new Set(["published", "updated"]);
const HUNK_OPS = new Set(["insert", "delete", "replace"]);

export class DiffError extends Error {}

function checkedInt(hunk, key) {
  const value = hunk[key];
  if (!Number.isInteger(value) || value < 0) {
    throw new DiffError(`diff hunk has a bad ${key}: ${JSON.stringify(value)}`);
  }
  return value;
}

function checkedList(hunk, key, length) {
  const value = hunk[key];
  if (!Array.isArray(value) || value.length !== length) {
    throw new DiffError(`diff hunk ${key} does not match its range`);
  }
  if (!value.every((item) => typeof item === "string")) {
    throw new DiffError(`diff hunk ${key} holds a non-string paragraph`);
  }
  return value;
}

// A snapshot field as Snapshot.from_json would read it: absent fields take their defaults, so a
// snapshot without "updated" still accepts a diff whose old value is null.
function fieldOf(snapshot, name) {
  const value = snapshot[name];
  if (value !== undefined) return value;
  if (name === "authors") return [];
  return NULLABLE_FIELDS.has(name) ? null : "";
}

function fieldValue(name, value) {
  if (name === "authors") {
    if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
      throw new DiffError("diff authors must be a list of strings");
    }
    return value.slice();
  }
  if (typeof value !== "string" && !(NULLABLE_FIELDS.has(name) && value === null)) {
    throw new DiffError(`diff field ${name} has a bad value`);
  }
  return value;
}

function sameValue(a, b) {
  if (Array.isArray(a) || Array.isArray(b)) {
    return (
      Array.isArray(a) && Array.isArray(b) && a.length === b.length &&
      a.every((item, i) => item === b[i])
    );
  }
  return a === b;
}

function checkHunk(hunk, position, oldLength) {
  if (hunk === null || typeof hunk !== "object" || !HUNK_OPS.has(hunk.op)) {
    throw new DiffError("not a diff hunk");
  }
  const oldStart = checkedInt(hunk, "old_start");
  const oldEnd = checkedInt(hunk, "old_end");
  const newStart = checkedInt(hunk, "new_start");
  const newEnd = checkedInt(hunk, "new_end");
  if (oldStart < position || oldEnd < oldStart || oldEnd > oldLength) {
    throw new DiffError("diff hunks overlap, are out of order or exceed the story");
  }
  if (newEnd < newStart) throw new DiffError("diff hunk ends before it starts");
  checkedList(hunk, "old", oldEnd - oldStart);
  checkedList(hunk, "new", newEnd - newStart);
  return { oldStart, oldEnd, newStart };
}

function applyParagraphs(old, hunks) {
  if (!Array.isArray(hunks)) throw new DiffError("diff paragraphs must be a list of hunks");
  const result = [];
  let position = 0; // next old paragraph not yet copied
  for (const hunk of hunks) {
    const { oldStart, oldEnd, newStart } = checkHunk(hunk, position, old.length);
    result.push(...old.slice(position, oldStart));
    if (newStart !== result.length) {
      throw new DiffError("diff hunk new_start does not match the paragraphs before it");
    }
    if (!sameValue(old.slice(oldStart, oldEnd), hunk.old)) {
      throw new DiffError("diff does not apply: old paragraphs differ from this snapshot");
    }
    result.push(...hunk.new);
    position = oldEnd;
  }
  result.push(...old.slice(position));
  return result;
}

/* The snapshot `diff` leads to from `snapshot`, as a new object. Throws DiffError when the diff
 * was not made from this snapshot, exactly where the Python apply raises ValueError: a reader
 * who missed a version must reload, not see a garbled story. */
export function applyDiff(snapshot, diff) {
  if (diff === null || typeof diff !== "object") throw new DiffError("not a diff");
  const fields = diff.fields;
  if (fields === null || typeof fields !== "object" || Array.isArray(fields)) {
    throw new DiffError("not a diff: missing fields");
  }
  const next = Object.assign({}, snapshot);
  for (const [name, change] of Object.entries(fields)) {
    if (!DIFF_FIELDS.includes(name) || change === null || typeof change !== "object") {
      throw new DiffError(`diff changes an unknown field: ${name}`);
    }
    if (!("old" in change) || !("new" in change)) {
      throw new DiffError(`diff field ${name} lacks old or new`);
    }
    if (!sameValue(fieldValue(name, change.old), fieldOf(snapshot, name))) {
      throw new DiffError(`diff does not apply: ${name} differs from this snapshot`);
    }
    next[name] = fieldValue(name, change.new);
  }
  const paragraphs = Array.isArray(snapshot.paragraphs) ? snapshot.paragraphs : [];
  next.paragraphs = applyParagraphs(paragraphs, diff.paragraphs === undefined ? [] : diff.paragraphs);
  if (Number.isInteger(diff.to_version)) next.version = diff.to_version;
  return next;
}

function runsMatch(runs, oldText, newText) {
  return (
    Array.isArray(runs) &&
    runs.every((r) => r && typeof r.old === "string" && typeof r.new === "string") &&
    runs.map((r) => r.old).join("") === oldText &&
    runs.map((r) => r.new).join("") === newText
  );
}

/* What to draw after `diff` turned `oldParagraphs` into the new ones: a list of
 *   {kind: "same" | "inserted" | "edited" | "removed", text, runs?}
 * in reading order. "edited" paragraphs carry word runs (from the hunk's "words" pairing) so
 * the changed words can be marked; removed paragraphs stay visible, struck out, until the next
 * update so a reader sees what went. Expects a diff that applyDiff accepted. */
export function displayItems(oldParagraphs, hunks) {
  const items = [];
  let position = 0;
  for (const hunk of hunks || []) {
    for (let i = position; i < hunk.old_start; i++) items.push({ kind: "same", text: oldParagraphs[i] });
    if (hunk.op === "insert") {
      for (const text of hunk.new) items.push({ kind: "inserted", text });
    } else if (hunk.op === "delete") {
      for (const text of hunk.old) items.push({ kind: "removed", text });
    } else {
      let oi = 0;
      let nj = 0;
      for (const pair of Array.isArray(hunk.words) ? hunk.words : []) {
        const i = pair.old_index - hunk.old_start;
        const j = pair.new_index - hunk.new_start;
        // Pairs must move forwards inside the hunk; anything else is ignored, not trusted.
        if (!(i >= oi && i < hunk.old.length && j >= nj && j < hunk.new.length)) continue;
        for (; oi < i; oi++) items.push({ kind: "removed", text: hunk.old[oi] });
        for (; nj < j; nj++) items.push({ kind: "inserted", text: hunk.new[nj] });
        const runs = checkedRuns(pair.runs, hunk.old[i], hunk.new[j]);
        items.push({ kind: "edited", text: hunk.new[j], runs });
        oi = i + 1;
        nj = j + 1;
      }
      for (; oi < hunk.old.length; oi++) items.push({ kind: "removed", text: hunk.old[oi] });
      for (; nj < hunk.new.length; nj++) items.push({ kind: "inserted", text: hunk.new[nj] });
    }
    position = hunk.old_end;
  }
  for (let i = position; i < oldParagraphs.length; i++) items.push({ kind: "same", text: oldParagraphs[i] });
  return items;
}

/* The server's word runs when they rebuild both texts exactly; otherwise one "replace" run (the
 * whole old text struck, the whole new one marked), never a wrong highlight. */
export function checkedRuns(runs, oldText, newText) {
  if (runsMatch(runs, oldText, newText)) return runs;
  return [{ op: "replace", old: oldText, new: newText }];
}

/* Word runs of a headline change ({old, new, words}) as the diff's `fields.title` carries it. */
export function headlineRuns(change) {
  return checkedRuns(change.words, String(change.old ?? ""), String(change.new ?? ""));
}

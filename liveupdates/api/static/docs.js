/* The API reference page (/docs): renders the OpenAPI and AsyncAPI documents this server serves.
 * An ES module with no dependencies and no globals; works offline (everything comes from this
 * origin). Everything from the documents is inserted as text, never as HTML. */

const $ = (id) => document.getElementById(id);
const MAX_DEPTH = 6;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function refName(ref) { return ref.split("/").pop(); }

function resolve(doc, ref) {
  return ref.replace(/^#\//, "").split("/").reduce((node, key) => (node ? node[key] : undefined), doc);
}

function constraints(schema) {
  const parts = [];
  const add = (label, key) => { if (schema[key] !== undefined) parts.push(`${label} ${JSON.stringify(schema[key])}`); };
  add("≥", "minimum");
  add("≤", "maximum");
  add("min length", "minLength");
  add("max length", "maxLength");
  add("pattern", "pattern");
  add("default", "default");
  if (schema.enum) parts.push(`one of ${schema.enum.map((v) => JSON.stringify(v)).join(", ")}`);
  if (schema.const !== undefined) parts.push(`always ${JSON.stringify(schema.const)}`);
  return parts.join("; ");
}

function typeLabel(schema) {
  if (schema.$ref) return refName(schema.$ref);
  if (schema.anyOf || schema.oneOf) return (schema.anyOf || schema.oneOf).map(typeLabel).join(" | ");
  if (schema.type === "array") return `array of ${schema.items ? typeLabel(schema.items) : "any"}`;
  if (Array.isArray(schema.type)) return schema.type.join(" | ");
  if (schema.type === "object" && schema.additionalProperties && !schema.properties) {
    return `object of ${typeLabel(schema.additionalProperties)}`;
  }
  if (schema.enum && schema.enum.length === 1) return JSON.stringify(schema.enum[0]);
  return schema.type || "any";
}

/* A schema as nested lists: properties with their types, constraints and descriptions;
 * referenced schemas expand in <details> (a schema already being expanded is only named). */
function schemaTree(doc, schema, depth, open) {
  if (!schema || depth > MAX_DEPTH) return null;
  if (schema.$ref) {
    const name = refName(schema.$ref);
    if (open.has(name)) return null;
    const target = resolve(doc, schema.$ref);
    const inner = schemaTree(doc, target, depth + 1, new Set([...open, name]));
    if (!inner) return null;
    const details = el("details", { class: "schema" }, el("summary", { text: name }), inner);
    if (depth === 0) details.open = true;
    return details;
  }
  const variants = schema.anyOf || schema.oneOf;
  if (variants) {
    const list = el("ul", { class: "variants" });
    for (const variant of variants) {
      const facts = [constraints(variant), variant.description].filter(Boolean).join(" — ");
      list.append(el("li", {}, el("code", { text: typeLabel(variant) }),
        facts ? el("span", { class: "facts", text: ` — ${facts}` }) : null,
        schemaTree(doc, variant, depth + 1, open)));
    }
    return el("div", {}, el("p", { class: "muted", text: "One of:" }), list);
  }
  if (schema.type === "array" && schema.items) return schemaTree(doc, schema.items, depth + 1, open);
  if (schema.type === "object" && schema.additionalProperties && !schema.properties) {
    return schemaTree(doc, schema.additionalProperties, depth + 1, open);
  }
  if (!schema.properties) return null;
  const required = new Set(schema.required || []);
  const list = el("ul", { class: "props" });
  for (const [name, prop] of Object.entries(schema.properties)) {
    const facts = [constraints(prop), prop.description].filter(Boolean).join(" — ");
    list.append(el("li", {},
      el("code", { class: "prop", text: name }),
      el("span", { class: "type", text: ` ${typeLabel(prop)}` }),
      required.has(name) ? el("span", { class: "required", text: " required" }) : null,
      facts ? el("span", { class: "facts", text: ` — ${facts}` }) : null,
      schemaTree(doc, prop, depth + 1, open)));
  }
  return list;
}

function example(value, label) {
  return el("details", { class: "example" },
    el("summary", { text: label || "Example" }),
    el("pre", {}, el("code", { text: JSON.stringify(value, null, 2) })));
}

function parameterTable(params) {
  const body = el("tbody");
  for (const p of params) {
    const facts = [constraints(p.schema || {}), p.description].filter(Boolean).join(" — ");
    body.append(el("tr", {},
      el("td", {}, el("code", { text: p.name })),
      el("td", { text: p.in }),
      el("td", { text: typeLabel(p.schema || {}) }),
      el("td", { text: p.required ? "yes" : "no" }),
      el("td", { text: facts })));
  }
  return el("table", { class: "params" },
    el("thead", {}, el("tr", {}, ...["name", "in", "type", "required", "notes"].map((h) => el("th", { text: h })))),
    body);
}

function anchor(text) { return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, ""); }

function renderOperation(doc, path, method, op) {
  const id = `op-${anchor(op.operationId || `${method} ${path}`)}`;
  const section = el("section", { class: "operation", id },
    el("h4", {}, el("span", { class: `method ${method}`, text: method.toUpperCase() }), " ", el("code", { text: path })),
    el("p", { text: op.summary || "" }));
  if (op.description) section.append(el("p", { class: "muted", text: op.description }));
  if (op.security && op.security.length) {
    section.append(el("p", { class: "auth", text: "Needs Authorization: Bearer <device secret>" }));
  }
  if (op.parameters && op.parameters.length) section.append(el("h5", { text: "Parameters" }), parameterTable(op.parameters));
  if (op.requestBody) {
    const media = op.requestBody.content["application/json"];
    section.append(el("h5", { text: `Request body${op.requestBody.required ? "" : " (optional)"}` }),
      schemaTree(doc, media.schema, 0, new Set()));
    for (const [name, ex] of Object.entries(media.examples || {})) section.append(example(ex.value, `Example: ${name}`));
  }
  section.append(el("h5", { text: "Responses" }));
  const list = el("dl", { class: "responses" });
  for (const [status, answer] of Object.entries(op.responses)) {
    const dd = el("dd", {}, el("p", { text: answer.description }));
    for (const [type, media] of Object.entries(answer.content || {})) {
      dd.append(el("p", { class: "muted" }, el("code", { text: type }),
        media.schema ? ` ${typeLabel(media.schema)}` : ""));
      if (media.schema && type === "application/json") dd.append(schemaTree(doc, media.schema, 0, new Set()));
      if (media.example !== undefined) dd.append(example(media.example));
    }
    if (answer.headers) dd.append(el("p", { class: "muted", text: `Headers: ${Object.keys(answer.headers).join(", ")}` }));
    list.append(el("dt", { class: `status s${status[0]}`, text: status }), dd);
  }
  section.append(list);
  return { id, section, label: `${method.toUpperCase()} ${path}` };
}

function renderOpenApi(doc, toc) {
  $("rest-intro").textContent = doc.info.description || "";
  const groups = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || "other";
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push(renderOperation(doc, path, method, op));
    }
  }
  const tocList = el("ul");
  for (const [tag, ops] of groups) {
    const group = el("section", { class: "tag", id: `tag-${anchor(tag)}` }, el("h3", { text: tag }));
    const sub = el("ul");
    for (const op of ops) {
      group.append(op.section);
      sub.append(el("li", {}, el("a", { href: `#${op.id}`, text: op.label })));
    }
    $("operations").append(group);
    tocList.append(el("li", {}, el("a", { href: `#tag-${anchor(tag)}`, text: tag }), sub));
  }
  toc.append(el("h2", {}, el("a", { href: "#rest", text: "REST" })), tocList);
  $("rest").hidden = false;
}

function renderAsyncApi(doc, toc) {
  $("streams-intro").textContent = doc.info.description || "";
  for (const [name, channel] of Object.entries(doc.channels)) {
    const names = Object.values(channel.messages).map((m) => refName(m.$ref));
    $("channels").append(el("section", { class: "channel", id: `channel-${name}` },
      el("h3", {}, `${channel.title || name} `, el("code", { text: channel.address })),
      channel.description ? el("p", { class: "muted", text: channel.description }) : null,
      el("p", { text: `Messages: ${names.join(", ")}` })));
  }
  const directions = new Map();
  for (const op of Object.values(doc.operations)) {
    for (const ref of op.messages) {
      const name = refName(ref.$ref);
      if (!directions.has(name)) directions.set(name, op.action === "receive" ? "client → server" : "server → client");
    }
  }
  const tocList = el("ul");
  for (const [name, message] of Object.entries(doc.components.messages)) {
    const id = `msg-${anchor(name)}`;
    const section = el("section", { class: "operation message", id },
      el("h4", {}, el("code", { text: name }), " ", el("span", { class: "muted", text: directions.get(name) || "" })),
      el("p", { text: message.summary || "" }),
      schemaTree(doc, message.payload, 0, new Set()));
    for (const ex of message.examples || []) section.append(example(ex.payload));
    $("messages").append(section);
    tocList.append(el("li", {}, el("a", { href: `#${id}`, text: name })));
  }
  toc.append(el("h2", {}, el("a", { href: "#streams", text: "Streams" })), tocList);
  $("streams").hidden = false;
}

async function load(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response.json();
}

async function main() {
  const toc = $("toc");
  try {
    const [openapi, asyncapi] = await Promise.all([load("/v1/openapi.json"), load("/v1/asyncapi.json")]);
    renderOpenApi(openapi, toc);
    renderAsyncApi(asyncapi, toc);
    $("status").textContent = `Public API ${openapi.info.version}: OpenAPI ${openapi.openapi}, AsyncAPI ${asyncapi.asyncapi}.`;
    document.body.dataset.ready = "true";
  } catch (error) {
    $("status").textContent = `Could not load the documents: ${error.message}`;
    document.body.dataset.ready = "error";
  }
}

main();

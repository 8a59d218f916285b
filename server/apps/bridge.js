/* What every view shares, inlined into each at serving time so each stays one self-contained file:
   strict mode, $ and esc, and the MCP Apps bridge to the host. */
"use strict";
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

/* The MCP Apps bridge to the host: JSON-RPC 2.0 over postMessage, nothing else (no network). */
const bridge = (() => {
  let next = 0;
  const waiting = new Map(), handlers = {};
  const send = (msg) => window.parent.postMessage(msg, "*");
  window.addEventListener("message", (event) => {
    const msg = event.data;
    if (event.source !== window.parent || !msg || msg.jsonrpc !== "2.0") return;
    if (msg.method === undefined) {
      const pending = waiting.get(msg.id);
      if (!pending) return;
      waiting.delete(msg.id);
      msg.error ? pending.reject(new Error(msg.error.message)) : pending.resolve(msg.result);
      return;
    }
    const handler = handlers[msg.method];
    const answer = handler ? handler(msg.params || {}) : undefined;
    if (msg.id !== undefined) Promise.resolve(answer).then((result) => send({ jsonrpc: "2.0", id: msg.id, result: result || {} }));
  });
  const request = (method, params) => new Promise((resolve, reject) => {
    const id = ++next;
    waiting.set(id, { resolve, reject });
    send({ jsonrpc: "2.0", id, method, params });
  });
  const notify = (method, params) => send({ jsonrpc: "2.0", method, params });
  const theme = (context) => {
    if (context.theme) document.documentElement.dataset.theme = context.theme;
    const vars = (context.styles && context.styles.variables) || {};
    for (const [name, value] of Object.entries(vars)) if (value) document.documentElement.style.setProperty(name, value);
  };
  handlers["ui/notifications/host-context-changed"] = theme;
  return {
    on: (method, fn) => { handlers[method] = fn; },
    async callTool(name, args) {
      const result = await request("tools/call", { name, arguments: args });
      if (result.isError) throw new Error((result.content || []).map((c) => c.text || "").join(" "));
      return result.structuredContent;
    },
    async start(name) {
      const init = await request("ui/initialize", { appInfo: { name, version: "1" }, appCapabilities: {}, protocolVersion: "2026-01-26" });
      theme(init.hostContext || {});
      notify("ui/notifications/initialized", {});
      new ResizeObserver(() => notify("ui/notifications/size-changed", {
        width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight })).observe(document.body);
    },
  };
})();

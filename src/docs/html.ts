/** HTML pieces of the plain documentation pages (/docs, /docs/ws): no script, no CDN. */
import { namedModels } from "../lib/model";
import { tsType } from "./typescript";

export const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
export const code = (s: string) => `<pre><code>${esc(s)}</code></pre>`;
/** A description's text as HTML: its `code` spans and [links](/path) as such (they showed raw). */
export const prose = (s: string) =>
  esc(s)
    .replace(/`([^`]+)`/g, "<code>$1</code>")
    .replace(/\[([^\]]+)\]\((\/[^)\s]*|https?:\/\/[^)\s]+)\)/g, '<a href="$2">$1</a>');
const anchor = (name: string) => `<a href="#${esc(name)}">${esc(name)}</a>`;

/** Type text with the names of models linked to their definitions (the page's "Models"). */
export const linked = (text: string) => {
  let html = esc(text);
  for (const name of namedModels().keys()) html = html.replace(new RegExp(`\\b${name}\\b(?!")`, "g"), anchor(name));
  return `<pre><code>${html}</code></pre>`;
};

/** Every named model as a TypeScript type, each a section its name links to. */
export const modelSections = () =>
  [...namedModels()].map(([name, schema]) => `<section id="${esc(name)}"><h3>${esc(name)}</h3>${linked(`type ${name} = ${tsType(schema, true)}`)}</section>`).join("\n");

export const page = (title: string, body: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%}th,td{border-top:1px solid #ddd;padding:.4rem;text-align:left;vertical-align:top}
pre{margin:0;white-space:pre-wrap}code{font:13px/1.4 ui-monospace,monospace}h2{margin-top:2.5rem}
.op{border-top:1px solid #ccc;margin-top:1.5rem}.method{font-weight:700;text-transform:uppercase}
</style></head><body><main>
${body}
</main></body></html>`;

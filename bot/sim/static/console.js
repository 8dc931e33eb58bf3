// The local Slack console: renders what the emulator holds and sends commands and clicks through it.
// Every piece of text from the bot is put into the page as DOM text nodes, never as HTML.
"use strict";

const API = "/console/api/";

const EMOJI = {
  // the ones bot/blocks.py uses
  new: "🆕", calendar: "📆", hourglass_flowing_sand: "⏳", octagonal_sign: "🛑", white_check_mark: "✅",
  x: "❌", no_entry_sign: "🚫", arrows_counterclockwise: "🔄", grey_question: "❔", warning: "⚠️",
  information_source: "ℹ️", no_entry: "⛔", wave: "👋", construction: "🚧",
  // common others
  hourglass: "⌛", clock: "🕐", stopwatch: "⏱️", alarm_clock: "⏰", spiral_calendar_pad: "🗓️", date: "📅",
  heavy_check_mark: "✔️", ballot_box_with_check: "☑️", heavy_multiplication_x: "✖️", exclamation: "❗",
  question: "❓", bangbang: "‼️", rotating_light: "🚨", red_circle: "🔴", large_green_circle: "🟢",
  large_yellow_circle: "🟡", large_blue_circle: "🔵", white_circle: "⚪", black_circle: "⚫",
  large_orange_circle: "🟠", arrows_clockwise: "🔃", repeat: "🔁", recycle: "♻️", arrow_right: "➡️",
  arrow_forward: "▶️", fast_forward: "⏩", double_vertical_bar: "⏸️", black_square_for_stop: "⏹️",
  rocket: "🚀", tada: "🎉", sparkles: "✨", zap: "⚡", fire: "🔥", boom: "💥", bell: "🔔", no_bell: "🔕",
  lock: "🔒", unlock: "🔓", key: "🔑", shield: "🛡️", mag: "🔍", eyes: "👀", memo: "📝", clipboard: "📋",
  pushpin: "📌", link: "🔗", gear: "⚙️", wrench: "🔧", hammer_and_wrench: "🛠️", package: "📦",
  card_index_dividers: "🗂️", file_folder: "📁", robot_face: "🤖", bulb: "💡", checkered_flag: "🏁",
  thumbsup: "👍", "+1": "👍", thumbsdown: "👎", "-1": "👎", ok_hand: "👌", raised_hand: "✋",
  pray: "🙏", skull: "💀", ghost: "👻", stop_sign: "🛑", traffic_light: "🚥", satellite: "📡",
  earth_americas: "🌎", globe_with_meridians: "🌐", busts_in_silhouette: "👥", bust_in_silhouette: "👤",
  speech_balloon: "💬", mailbox: "📫", inbox_tray: "📥", outbox_tray: "📤", chart_with_upwards_trend: "📈",
  bar_chart: "📊", heavy_plus_sign: "➕", heavy_minus_sign: "➖", soon: "🔜", back: "🔙", new_moon: "🌑",
  sunny: "☀️", cloud: "☁️", umbrella: "☂️", snowflake: "❄️", moon: "🌔", test_tube: "🧪", broom: "🧹",
  seedling: "🌱", inbox: "📥", smile: "😄", slightly_smiling_face: "🙂", thinking_face: "🤔",
};

const state = {
  ws: null,
  channel: null, // a channel, or on the app's tabs the user's direct message channel with it
  surface: "channel", // "channel", or the app's "home" or "messages" tab
  user: null,
  version: null,
  view: null,
  poll: null,
  seen: {},
  echoes: [],
  inputs: {}, // view id -> block_id -> action_id -> what the user entered, as the console API takes it
  homeKey: null,
  modalKey: null,
};

// ---- DOM helpers -------------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "style") Object.assign(node.style, value); // CSSOM: allowed by the page's CSP
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

const $ = (id) => document.getElementById(id);

function decodeEntities(text) {
  return text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

// ---- emoji -------------------------------------------------------------------------------------

const EMOJI_RE = /:([a-z0-9_+\-]+):/g;

// Text with :shortcodes: as nodes; unknown shortcodes stay as typed, as in Slack.
function withEmoji(text) {
  const out = [];
  let last = 0;
  for (const match of text.matchAll(EMOJI_RE)) {
    const glyph = EMOJI[match[1]];
    if (!glyph) continue;
    if (match.index > last) out.push(text.slice(last, match.index));
    out.push(el("span", { class: "emoji", title: match[0], role: "img", "aria-label": match[1] }, glyph));
    last = match.index + match[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

// ---- Slack dates -------------------------------------------------------------------------------

function ordinal(day) {
  const tens = day % 100;
  if (tens >= 11 && tens <= 13) return `${day}th`;
  return `${day}${{ 1: "st", 2: "nd", 3: "rd" }[day % 10] || "th"}`;
}

function dayOffset(date) {
  const start = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  return Math.round((start(date) - start(new Date())) / 86400000);
}

function ago(date) {
  const seconds = Math.round((date.getTime() - Date.now()) / 1000);
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const units = [["year", 31536000], ["month", 2592000], ["day", 86400], ["hour", 3600], ["minute", 60]];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) return rtf.format(Math.round(seconds / size), unit);
  }
  return rtf.format(seconds, "second");
}

// `<!date^epoch^format|fallback>` in the reader's time zone, like Slack's clients.
function formatSlackDate(epoch, format) {
  const date = new Date(epoch * 1000);
  const fmt = (options) => new Intl.DateTimeFormat(undefined, options).format(date);
  const month = (style) => fmt({ month: style });
  const plain = {
    date_num: () => `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")}`,
    date: () => `${month("long")} ${ordinal(date.getDate())}, ${date.getFullYear()}`,
    date_short: () => fmt({ month: "short", day: "numeric", year: "numeric" }),
    date_long: () => `${fmt({ weekday: "long" })}, ${month("long")} ${ordinal(date.getDate())}, ${date.getFullYear()}`,
    time: () => fmt({ hour: "numeric", minute: "2-digit" }),
    time_secs: () => fmt({ hour: "numeric", minute: "2-digit", second: "2-digit" }),
    ago: () => ago(date),
  };
  const pretty = (base) => () => ({ "-1": "yesterday", 0: "today", 1: "tomorrow" })[dayOffset(date)] || plain[base]();
  const tokens = {
    ...plain,
    date_pretty: pretty("date"),
    date_short_pretty: pretty("date_short"),
    date_long_pretty: pretty("date_long"),
  };
  return format.replace(/\{(\w+)\}/g, (whole, token) => (tokens[token] ? tokens[token]() : whole));
}

// ---- mrkdwn ------------------------------------------------------------------------------------

const INLINE = new RegExp(
  [
    "`([^`\\n]+)`", // 1 code
    "<([^<>\\n]+)>", // 2 mention, date, link
    "(?<![\\p{L}\\p{N}*])\\*(?=\\S)([^*\\n]*?\\S)\\*(?![\\p{L}\\p{N}*])", // 3 bold
    "(?<![\\p{L}\\p{N}_])_(?=\\S)([^_\\n]*?\\S)_(?![\\p{L}\\p{N}_])", // 4 italic
    "(?<![\\p{L}\\p{N}~])~(?=\\S)([^~\\n]*?\\S)~(?![\\p{L}\\p{N}~])", // 5 strike
  ].join("|"),
  "gu",
);

function safeUrl(url) {
  return /^(https?:|mailto:)/i.test(url) ? url : null;
}

function special(body) {
  const [target, ...labelParts] = body.split("|");
  const label = labelParts.length ? decodeEntities(labelParts.join("|")) : null;
  const users = state.ws ? state.ws.users : {};
  const groups = state.ws ? state.ws.usergroups : {};
  if (target.startsWith("@")) {
    const id = target.slice(1);
    return el("span", { class: "mention", title: id }, `@${users[id] || label || id}`);
  }
  if (target.startsWith("#")) {
    const id = target.slice(1);
    const channel = state.ws && state.ws.channels.find((c) => c.id === id);
    return el("span", { class: "mention", title: id }, `#${channel ? channel.name : label || id}`);
  }
  if (target.startsWith("!subteam^")) {
    const id = target.slice("!subteam^".length);
    return el("span", { class: "mention", title: id }, `@${groups[id] || (label || id).replace(/^@/, "")}`);
  }
  if (target.startsWith("!date^")) {
    const [, epoch, format, link] = target.split("^");
    const fallback = label || body;
    const seconds = Number(epoch);
    const shown = Number.isFinite(seconds) && format ? formatSlackDate(seconds, format) : fallback;
    const node = el("span", { class: "slack-date", title: fallback }, shown);
    return link && safeUrl(link) ? el("a", { href: link, target: "_blank", rel: "noopener noreferrer" }, node) : node;
  }
  if (target === "!here" || target === "!channel" || target === "!everyone") {
    return el("span", { class: "mention" }, `@${target.slice(1)}`);
  }
  const url = safeUrl(decodeEntities(target));
  if (url) return el("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, label || url);
  return `<${decodeEntities(body)}>`;
}

function inline(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) out.push(...withEmoji(decodeEntities(text.slice(last, m.index))));
    if (m[1] !== undefined) out.push(el("code", {}, decodeEntities(m[1])));
    else if (m[2] !== undefined) out.push(special(m[2]));
    else if (m[3] !== undefined) out.push(el("b", {}, inline(m[3])));
    else if (m[4] !== undefined) out.push(el("i", {}, inline(m[4])));
    else if (m[5] !== undefined) out.push(el("s", {}, inline(m[5])));
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(...withEmoji(decodeEntities(text.slice(last))));
  return out;
}

function lines(text) {
  const parts = [];
  text.split("\n").forEach((line, i) => {
    if (i) parts.push(el("br"));
    parts.push(...inline(line));
  });
  return parts;
}

// A mrkdwn text as nodes: ```pre``` blocks, > quotes, then inline formatting.
function mrkdwn(text) {
  const root = el("div", { class: "mrkdwn" });
  String(text || "").split("```").forEach((segment, i) => {
    if (i % 2 === 1) {
      root.append(el("pre", {}, decodeEntities(segment.replace(/^\n/, ""))));
      return;
    }
    let paragraph = [];
    let quote = [];
    const flush = () => {
      if (paragraph.length) root.append(el("p", {}, lines(paragraph.join("\n"))));
      if (quote.length) root.append(el("blockquote", {}, lines(quote.join("\n"))));
      paragraph = [];
      quote = [];
    };
    for (const line of segment.split("\n")) {
      const quoted = line.match(/^(?:&gt;|>)\s?(.*)$/);
      if (quoted) {
        if (paragraph.length) flush();
        quote.push(quoted[1]);
      } else {
        if (quote.length) flush();
        paragraph.push(line);
      }
    }
    flush();
  });
  return root;
}

function textObject(obj) {
  if (!obj) return null;
  if (obj.type === "mrkdwn") return mrkdwn(obj.text);
  return el("span", {}, obj.emoji === false ? obj.text : withEmoji(String(obj.text || "")));
}

function plainString(obj) {
  return obj && obj.text ? String(obj.text) : "";
}

// ---- Block Kit ---------------------------------------------------------------------------------

function element(elem, message, block) {
  if (message && message.view) return viewElement(elem, message.view, block, false);
  if (elem.type === "button") {
    const style = elem.style === "primary" ? "btn btn-primary" : elem.style === "danger" ? "btn btn-danger" : "btn";
    return el("button", {
      class: style,
      type: "button",
      "data-action-id": elem.action_id,
      onclick: (event) => clickButton(event.currentTarget, elem, message, block),
    }, textObject(elem.text));
  }
  if (elem.type === "image") return el("span", { class: "element", title: elem.image_url || "" }, `[image: ${elem.alt_text || ""}]`);
  if (elem.type === "mrkdwn" || elem.type === "plain_text") return textObject(elem);
  const label = elem.placeholder ? plainString(elem.placeholder) : elem.type;
  return el("span", { class: "element", title: `${elem.type} (not interactive in this console)` }, label);
}

function richText(block) {
  const styled = (item) => {
    let node = item.type === "emoji" ? (EMOJI[item.name] ? el("span", { class: "emoji" }, EMOJI[item.name]) : `:${item.name}:`)
      : item.type === "link" ? (safeUrl(item.url) ? el("a", { href: item.url, target: "_blank", rel: "noopener noreferrer" }, item.text || item.url) : item.text || "")
      : item.type === "user" ? special(`@${item.user_id}`)
      : item.type === "usergroup" ? special(`!subteam^${item.usergroup_id}`)
      : item.type === "channel" ? special(`#${item.channel_id}`)
      : item.type === "date" ? el("span", { class: "slack-date" }, formatSlackDate(item.timestamp, item.format || "{date_short} {time}"))
      : String(item.text || "");
    const style = item.style || {};
    if (style.code) node = el("code", {}, node);
    if (style.bold) node = el("b", {}, node);
    if (style.italic) node = el("i", {}, node);
    if (style.strike) node = el("s", {}, node);
    return node;
  };
  const part = (p) => {
    const items = (p.elements || []).map(styled);
    if (p.type === "rich_text_preformatted") return el("pre", {}, items);
    if (p.type === "rich_text_quote") return el("blockquote", {}, items);
    if (p.type === "rich_text_list") return el(p.style === "ordered" ? "ol" : "ul", {}, (p.elements || []).map((s) => el("li", {}, (s.elements || []).map(styled))));
    return el("p", {}, items);
  };
  return el("div", { class: "mrkdwn" }, (block.elements || []).map(part));
}

function renderBlock(block, message) {
  switch (block.type) {
    case "header":
      return el("div", { class: "b-header", role: "heading", "aria-level": "3" }, textObject(block.text));
    case "section": {
      const main = el("div", { class: "b-section-main" }, textObject(block.text));
      if (block.fields && block.fields.length) main.append(el("div", { class: "b-fields" }, block.fields.map(textObject)));
      return el("div", { class: "b-section" }, main, block.accessory ? element(block.accessory, message, block) : null);
    }
    case "context":
      return el("div", { class: "b-context" }, (block.elements || []).map((e) => element(e, message, block)));
    case "divider":
      return el("hr", { class: "b-divider" });
    case "actions":
      return el("div", { class: "b-actions", role: "group" }, (block.elements || []).map((e) => element(e, message, block)));
    case "image":
      return el("div", { class: "b-image", title: block.image_url || "" }, `[image: ${block.alt_text || ""}]`);
    case "rich_text":
      return richText(block);
    case "input":
      if (message && message.view) return renderInput(block, message.view);
      return el("div", { class: "b-unsupported" }, "(an input block: only in views)");
    default:
      return el("div", { class: "b-unsupported" }, `(a ${block.type} block: not shown by this console)`);
  }
}


// ---- views: the Home tab and modals --------------------------------------------------------------

function inputId(view, block, elem) {
  return `in-${view.id}-${block.block_id}-${elem.action_id}`.replace(/[^A-Za-z0-9_-]/g, "_");
}

function entered(view, block, elem) {
  const byBlock = (state.inputs[view.id] || {})[block.block_id] || {};
  return Object.prototype.hasOwnProperty.call(byBlock, elem.action_id) ? byBlock[elem.action_id] : undefined;
}

function remember(view, block, elem, value) {
  const byView = (state.inputs[view.id] ||= {});
  (byView[block.block_id] ||= {})[elem.action_id] = value;
}

// What the page holds entered for the elements this view has now (inputs of replaced blocks are dropped).
function valuesFor(view) {
  const out = {};
  for (const block of view.blocks || []) {
    const elems = block.type === "input" ? [block.element] : block.type === "actions" ? block.elements || [] : block.type === "section" ? [block.accessory] : [];
    for (const elem of elems) {
      if (!elem || !elem.action_id) continue;
      const value = entered(view, block, elem);
      if (value !== undefined) (out[block.block_id] ||= {})[elem.action_id] = value;
    }
  }
  return out;
}

function localDateTime(epoch) {
  const d = new Date(epoch * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function optionsOf(elem) {
  const list = [...(elem.options || [])];
  for (const group of elem.option_groups || []) list.push(...(group.options || []));
  return list;
}

function choiceOptions(elem) {
  if (elem.type.startsWith("users_") || elem.type.startsWith("multi_users_")) {
    return Object.entries(state.ws.users).map(([id, name]) => ({ value: id, label: `@${name}` }));
  }
  if (/(conversations|channels)_select$/.test(elem.type)) {
    return state.ws.channels.map((c) => ({ value: c.id, label: `#${c.name}` }));
  }
  return optionsOf(elem).map((o) => ({ value: o.value, label: plainString(o.text) }));
}

function initialChoice(elem) {
  const initial = elem.initial_option || elem.initial_user || elem.initial_conversation || elem.initial_channel;
  if (!initial) return null;
  return typeof initial === "string" ? initial : initial.value;
}

// An element of a view as a control; `inInput`: the element of an input block (sent only on submit,
// unless the block dispatches actions).
function viewElement(elem, view, block, inInput) {
  if (elem.type === "button") {
    const style = elem.style === "primary" ? "btn btn-primary" : elem.style === "danger" ? "btn btn-danger" : "btn";
    return el("button", {
      class: style,
      type: "button",
      "data-action-id": elem.action_id,
      onclick: (event) => viewButton(event.currentTarget, elem, view, block),
    }, textObject(elem.text));
  }
  const id = inputId(view, block, elem);
  const dispatches = !inInput || block.dispatch_action;
  const changed = (value) => {
    remember(view, block, elem, value);
    if (dispatches) viewAction(view, block, elem, value);
  };
  const held = entered(view, block, elem);
  const label = inInput ? null : plainString(elem.placeholder) || elem.type;
  const type = elem.type;
  if (type === "plain_text_input" || type === "email_text_input" || type === "url_text_input" || type === "number_input") {
    const kind = { email_text_input: "email", url_text_input: "url", number_input: "number" }[type] || "text";
    const attrs = {
      id,
      class: "field",
      placeholder: plainString(elem.placeholder) || null,
      "aria-label": label,
      onchange: (event) => changed(event.target.value === "" ? null : event.target.value),
    };
    const node = type === "plain_text_input" && elem.multiline ? el("textarea", { ...attrs, rows: 4 }) : el("input", { ...attrs, type: kind });
    node.value = held !== undefined ? held || "" : elem.initial_value || "";
    return node;
  }
  if (type === "radio_buttons" || type === "checkboxes") {
    const multiple = type === "checkboxes";
    const chosen = held !== undefined ? held : multiple ? (elem.initial_options || []).map((o) => o.value) : initialChoice(elem);
    const group = el("div", { id, class: "choices", role: multiple ? "group" : "radiogroup", "aria-label": label });
    for (const option of optionsOf(elem)) {
      const box = el("input", {
        type: multiple ? "checkbox" : "radio",
        name: id,
        value: option.value,
        checked: multiple ? (chosen || []).includes(option.value) : chosen === option.value,
        onchange: () => {
          if (multiple) changed([...group.querySelectorAll("input:checked")].map((i) => i.value));
          else changed(option.value);
        },
      });
      group.append(el("label", { class: "choice" }, box, el("span", {}, textObject(option.text))));
    }
    return group;
  }
  if (type === "datepicker" || type === "timepicker" || type === "datetimepicker") {
    const kind = { datepicker: "date", timepicker: "time", datetimepicker: "datetime-local" }[type];
    const initial = type === "datepicker" ? elem.initial_date : type === "timepicker" ? elem.initial_time : elem.initial_date_time;
    const shown = held !== undefined ? held : initial;
    const node = el("input", {
      id,
      class: "field",
      type: kind,
      "aria-label": label,
      onchange: (event) => {
        const text = event.target.value;
        if (!text) changed(null);
        else if (type === "datetimepicker") changed(Math.floor(new Date(text).getTime() / 1000));
        else changed(text.slice(0, type === "timepicker" ? 5 : 10));
      },
    });
    if (shown !== undefined && shown !== null) node.value = type === "datetimepicker" ? localDateTime(shown) : String(shown);
    return node;
  }
  if (type.endsWith("select")) {
    const multiple = type.startsWith("multi_");
    const chosen = held !== undefined ? held : multiple ? (elem.initial_options || elem.initial_users || elem.initial_conversations || elem.initial_channels || []).map((o) => (typeof o === "string" ? o : o.value)) : initialChoice(elem);
    const node = el("select", {
      id,
      class: "field",
      multiple: multiple || null,
      "aria-label": label,
      onchange: (event) => {
        if (multiple) changed([...event.target.selectedOptions].map((o) => o.value));
        else changed(event.target.value === "" ? null : event.target.value);
      },
    });
    if (!multiple) node.append(el("option", { value: "" }, plainString(elem.placeholder) || "Choose an option"));
    for (const option of choiceOptions(elem)) {
      node.append(el("option", {
        value: option.value,
        selected: multiple ? (chosen || []).includes(option.value) : chosen === option.value,
      }, option.label));
    }
    return node;
  }
  if (elem.type === "image") return el("span", { class: "element", title: elem.image_url || "" }, `[image: ${elem.alt_text || ""}]`);
  if (elem.type === "mrkdwn" || elem.type === "plain_text") return textObject(elem);
  return el("span", { class: "element", title: `${elem.type} (not interactive in this console)` }, elem.type);
}

function renderInput(block, view) {
  const elem = block.element || {};
  const id = inputId(view, block, elem);
  const error = (view.errors || {})[block.block_id];
  const control = viewElement(elem, view, block, true);
  if (error) control.setAttribute("aria-invalid", "true");
  const labelText = plainString(block.label);
  const labelNode = control.tagName === "DIV"
    ? el("span", { class: "input-label", id: `${id}-label` }, labelText)
    : el("label", { class: "input-label", for: id }, labelText);
  if (control.tagName === "DIV") control.setAttribute("aria-labelledby", `${id}-label`);
  return el("div", { class: `b-input${error ? " has-error" : ""}`, "data-block-id": block.block_id },
    el("div", {}, labelNode, block.optional ? el("span", { class: "input-optional" }, " (optional)") : null),
    control,
    block.hint ? el("div", { class: "input-hint" }, textObject(block.hint)) : null,
    error ? el("div", { class: "input-error", role: "alert" }, error) : null);
}

function renderViewBlocks(view) {
  return (view.blocks || []).map((b) => renderBlock(b, { view }));
}

function renderHome(home) {
  const key = home ? `${home.id}:${home.hash}:${JSON.stringify(home.errors)}` : "none";
  if (key === state.homeKey) return;
  state.homeKey = key;
  const pane = $("home");
  if (!home) {
    const app = state.ws.app.name;
    pane.replaceChildren(el("p", { class: "empty" }, `${app} has not published a Home tab for you yet.`));
    return;
  }
  pane.replaceChildren(el("div", { class: "blocks home-blocks" }, renderViewBlocks(home)));
}

function renderModals(modals) {
  const dialog = $("modal");
  const top = modals && modals.length ? modals[modals.length - 1] : null;
  if (!top) {
    state.modalKey = null;
    if (dialog.open) dialog.close();
    return;
  }
  const key = `${top.id}:${top.hash}:${JSON.stringify(top.errors)}:${top.notice}:${modals.length}`;
  if (key === state.modalKey && dialog.open) return;
  state.modalKey = key;
  $("modal-title").textContent = plainString(top.title);
  const notice = $("modal-notice");
  notice.textContent = top.notice || "";
  notice.hidden = !top.notice;
  $("modal-body").replaceChildren(...renderViewBlocks(top));
  const close = $("modal-close");
  close.textContent = plainString(top.close) || "Cancel";
  close.onclick = () => closeModal(top, false);
  $("modal-x").onclick = () => closeModal(top, true);
  const submit = $("modal-submit");
  submit.hidden = !top.submit;
  submit.disabled = false;
  submit.textContent = plainString(top.submit) || "Submit";
  submit.onclick = () => submitModal(top, submit);
  dialog.oncancel = (event) => {
    event.preventDefault(); // Escape closes the modal the way Slack does: through the emulator
    closeModal(top, true);
  };
  if (!dialog.open) dialog.showModal();
}

async function viewCall(path, body, what) {
  try {
    const answer = await postJson(path, { user: state.user, ...body });
    if (!answer.ok) setStatus(failure(what, answer), true);
    else setStatus("");
    return answer;
  } catch (error) {
    setStatus("The console is not reachable. Is the demo still running?", true);
    return { ok: false };
  }
}

async function viewButton(button, elem, view, block) {
  if (elem.confirm && !(await confirmDialog(elem.confirm))) return;
  if (elem.url && safeUrl(elem.url)) window.open(elem.url, "_blank", "noopener,noreferrer");
  button.disabled = true;
  try {
    await viewAction(view, block, elem, undefined);
  } finally {
    button.disabled = false;
  }
}

function viewAction(view, block, elem, value) {
  return viewCall("view_action", {
    view_id: view.id,
    block_id: block.block_id,
    action_id: elem.action_id,
    values: valuesFor(view),
    value: value === undefined ? null : value,
  }, plainString(elem.text) || "The action");
}

async function submitModal(view, button) {
  button.disabled = true;
  const answer = await viewCall("view_submit", { view_id: view.id, values: valuesFor(view) }, plainString(view.submit) || "Submit");
  if (answer.ok) state.modalKey = null; // shown again as the emulator holds it now (errors, update, push)
  button.disabled = false;
}

function closeModal(view, clear) {
  return viewCall("view_close", { view_id: view.id, clear }, "Closing");
}

// ---- shortcuts -------------------------------------------------------------------------------------

function renderShortcuts() {
  const shortcuts = state.ws.shortcuts || [];
  $("shortcuts").hidden = !shortcuts.length;
  $("shortcut-menu").replaceChildren(...shortcuts.map((s) => el("button", {
    type: "button",
    role: "menuitem",
    class: "shortcut",
    onclick: () => runShortcut(s),
  }, el("span", { class: "shortcut-name" }, s.name), s.description ? el("span", { class: "shortcut-description" }, s.description) : null)));
}

function toggleShortcuts(open) {
  const menu = $("shortcut-menu");
  const show = open === undefined ? menu.hidden : open;
  menu.hidden = !show;
  $("shortcuts").setAttribute("aria-expanded", String(show));
}

async function runShortcut(shortcut) {
  toggleShortcuts(false);
  await viewCall("shortcut", { callback_id: shortcut.callback_id }, shortcut.name);
}

// ---- messages ----------------------------------------------------------------------------------

const COLORS = ["#e8912d", "#2bac76", "#1264a3", "#9b3b9b", "#e01e5a", "#0b4c8c"];

function avatar(name, isBot) {
  const color = isBot ? "#4a154b" : COLORS[[...name].reduce((a, c) => a + c.charCodeAt(0), 0) % COLORS.length];
  return el("div", { class: "avatar", style: { background: color }, "aria-hidden": "true" }, (name[0] || "?").toUpperCase());
}

function timeOf(ts) {
  const date = new Date(Number(ts) * 1000);
  return el("time", { class: "msg-time", datetime: date.toISOString(), title: date.toString() },
    date.toLocaleTimeString(undefined, { hour: "numeric", minute: "2-digit" }));
}

function attachmentColor(color) {
  const named = { good: "#2eb886", warning: "#daa038", danger: "#a30200" };
  if (named[color]) return named[color];
  if (/^#?[0-9a-f]{6}$/i.test(color || "")) return color.startsWith("#") ? color : `#${color}`;
  return "#dddddd";
}

function renderMessage(message, isReply) {
  const body = el("div", { class: "msg-body" },
    el("div", { class: "msg-meta" },
      el("span", { class: "author" }, message.user_name),
      message.is_bot ? el("span", { class: "app-badge" }, "APP") : null,
      timeOf(message.ts)),
    message.ephemeral ? el("div", { class: "ephemeral-note" }, "👁 Only visible to you") : null,
    message.broadcast ? el("div", { class: "thread-note" }, "↪ Also sent to the channel") : null);
  if (message.blocks && message.blocks.length) {
    body.append(el("div", { class: "blocks" }, message.blocks.map((b) => renderBlock(b, message))));
  } else if (message.text) {
    body.append(mrkdwn(message.text));
  }
  for (const attachment of message.attachments || []) {
    const box = el("div", { class: "b-attachment", style: { borderLeftColor: attachmentColor(attachment.color) } });
    if (attachment.blocks) box.append(...attachment.blocks.map((b) => renderBlock(b, message)));
    else if (attachment.text) box.append(mrkdwn(attachment.text));
    body.append(box);
  }
  return el("article", {
    class: `msg${message.ephemeral ? " ephemeral" : ""}${isReply ? " reply" : ""}`,
    "data-ts": message.ts,
    "aria-label": `${message.user_name}${message.ephemeral ? " (only visible to you)" : ""}`,
  }, avatar(message.user_name, message.is_bot), body);
}

function renderEcho(echo) {
  return el("div", { class: "echo" }, `${echo.name} ran `, el("code", {}, echo.text));
}

function renderMessages(view) {
  const pane = $("messages");
  const atBottom = pane.scrollHeight - pane.scrollTop - pane.clientHeight < 40;
  const replies = {};
  for (const m of view.messages) if (m.thread_ts) (replies[m.thread_ts] ||= []).push(m);
  const known = new Set(view.messages.map((m) => m.ts));
  const items = view.messages
    .filter((m) => !m.thread_ts || !known.has(m.thread_ts))
    .map((m) => ({ ts: Number(m.ts), node: () => [renderMessage(m, Boolean(m.thread_ts)), ...(replies[m.ts] || []).map((r) => renderMessage(r, true))] }));
  for (const echo of state.echoes) {
    if (echo.channel === view.channel && echo.user === view.user) items.push({ ts: echo.ts, node: () => [renderEcho(echo)] });
  }
  items.sort((a, b) => a.ts - b.ts);
  const nodes = items.flatMap((item) => item.node());
  pane.replaceChildren(...(nodes.length ? nodes : [el("p", { class: "empty" }, "No messages here yet. Type a command below.")]));
  if (atBottom) pane.scrollTop = pane.scrollHeight;
}

// ---- sidebar -----------------------------------------------------------------------------------

function renderChannels() {
  const counts = state.view ? state.view.counts : {};
  $("channels").replaceChildren(...state.ws.channels.map((c) => {
    const fresh = c.id === state.channel ? 0 : Math.max(0, (counts[c.id] || 0) - (state.seen[c.id] ?? counts[c.id] ?? 0));
    const unread = fresh > 0;
    return el("li", {}, el("button", {
      type: "button",
      class: unread ? "unread" : null,
      "aria-current": c.id === state.channel && state.surface === "channel" ? "true" : "false",
      "data-channel": c.id,
      onclick: () => select(c.id, state.user),
    }, el("span", {}, `# ${c.name}`), fresh ? el("span", { class: "unread-count" }, String(fresh)) : null));
  }));
  const onApp = state.surface !== "channel";
  $("apps").replaceChildren(el("li", {}, el("button", {
    type: "button",
    "aria-current": onApp ? "true" : "false",
    "data-app": state.ws.app.id,
    onclick: () => openApp("home", state.user),
  }, el("span", {}, state.ws.app.name))));
  const channel = state.ws.channels.find((c) => c.id === state.channel);
  $("channel-title").textContent = onApp ? state.ws.app.name : `# ${channel ? channel.name : state.channel}`;
  renderSurface();
}

// Which pane shows: a channel's messages, or the app's Home or Messages tab.
function renderSurface() {
  const onApp = state.surface !== "channel";
  const tabs = $("app-tabs");
  tabs.hidden = !onApp;
  tabs.replaceChildren(...["home", "messages"].map((tab) => el("button", {
    type: "button",
    role: "tab",
    class: "app-tab",
    "aria-selected": state.surface === tab ? "true" : "false",
    onclick: () => openApp(tab, state.user),
  }, tab === "home" ? "Home" : "Messages")));
  $("home").hidden = state.surface !== "home";
  $("messages").hidden = state.surface === "home";
  $("composer").hidden = state.surface === "home";
}

function renderPersonas() {
  $("personas").replaceChildren(...state.ws.personas.map((p) => el("label", { class: "persona" },
    el("input", {
      type: "radio",
      name: "persona",
      value: p.id,
      checked: p.id === state.user,
      onchange: () => (state.surface === "channel" ? select(state.channel, p.id) : openApp(state.surface, p.id)),
    }),
    el("span", {}, el("span", { class: "persona-name" }, p.name), el("span", { class: "persona-description" }, p.description)))));
}

function renderHints() {
  $("hints").replaceChildren(...state.ws.hints.map((hint) => el("button", {
    class: "hint",
    type: "button",
    title: "Put this command in the box",
    onclick: () => {
      $("command").value = hint;
      $("command").focus();
    },
  }, hint)));
}

// ---- talking to the console API ------------------------------------------------------------------

async function postJson(path, body) {
  const response = await fetch(API + path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  let answer = {};
  try {
    answer = await response.json();
  } catch (error) {
    answer = { ok: false, error: `HTTP ${response.status}` };
  }
  return answer;
}

function setStatus(text, isError) {
  const status = $("composer-status");
  status.textContent = text;
  status.classList.toggle("error", Boolean(isError));
}

function failure(what, answer) {
  if (answer.error === "operation_timeout" || answer.error === "dispatch_failed") {
    const detail = answer.status ? ` (HTTP ${answer.status})` : "";
    return `${what} failed with the error "${answer.error}"${detail}`;
  }
  return `${what}: ${answer.error || "failed"}`;
}

async function sendCommand(event) {
  event.preventDefault();
  const input = $("command");
  const text = input.value.trim();
  if (!text || text === "/sandbox") {
    setStatus("Type a command after /sandbox, e.g. /sandbox help", true);
    return;
  }
  $("send").disabled = true;
  const persona = state.ws.personas.find((p) => p.id === state.user);
  state.echoes.push({ channel: state.channel, user: state.user, ts: Date.now() / 1000, text, name: persona ? persona.name : state.user });
  if (state.view) renderMessages(state.view);
  try {
    const answer = await postJson("command", { user: state.user, channel: state.channel, text });
    if (answer.ok) {
      input.value = "/sandbox ";
      setStatus("");
    } else {
      setStatus(failure(text.split(" ")[0], answer), true);
    }
  } catch (error) {
    setStatus("The console is not reachable. Is the demo still running?", true);
  } finally {
    $("send").disabled = false;
    input.focus();
  }
}

function confirmDialog(confirm) {
  const dialog = $("confirm");
  $("confirm-title").textContent = plainString(confirm.title) || "Are you sure?";
  $("confirm-text").replaceChildren(textObject(confirm.text) || "");
  const ok = $("confirm-ok");
  ok.textContent = plainString(confirm.confirm) || "Yes";
  ok.className = confirm.style === "danger" ? "btn btn-danger" : "btn btn-primary";
  $("confirm-deny").textContent = plainString(confirm.deny) || "Cancel";
  return new Promise((resolve) => {
    const finish = (value) => {
      ok.onclick = null;
      $("confirm-deny").onclick = null;
      dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(value);
    };
    ok.onclick = () => finish(true);
    $("confirm-deny").onclick = () => finish(false);
    dialog.onclose = () => finish(false);
    dialog.showModal();
  });
}

async function clickButton(button, elem, message, block) {
  if (elem.confirm && !(await confirmDialog(elem.confirm))) return;
  if (elem.url && safeUrl(elem.url)) window.open(elem.url, "_blank", "noopener,noreferrer");
  button.disabled = true;
  try {
    const answer = await postJson("click", {
      user: state.user,
      channel: state.channel,
      ts: message.ts,
      block_id: block.block_id,
      action_id: elem.action_id,
    });
    setStatus(answer.ok ? "" : failure(plainString(elem.text) || "The button", answer), !answer.ok);
  } catch (error) {
    setStatus("The console is not reachable. Is the demo still running?", true);
  } finally {
    button.disabled = false;
  }
}

// ---- selection and the long poll -----------------------------------------------------------------

function select(channel, user) {
  if (user !== state.user) state.seen = {};
  state.channel = channel;
  state.surface = "channel";
  state.user = user;
  state.version = null;
  state.homeKey = null;
  state.modalKey = null;
  history.replaceState(null, "", `#channel=${encodeURIComponent(channel)}&user=${encodeURIComponent(user)}`);
  renderChannels();
  renderPersonas();
  if (state.poll) state.poll.abort();
}

// The user opens the app's Home or Messages tab: the bot hears of it (app_home_opened) and the page
// follows the user's direct message channel with the app.
async function openApp(tab, user) {
  if (user !== state.user) state.seen = {};
  let answer;
  try {
    answer = await postJson("app", { user, tab });
  } catch (error) {
    setStatus("The console is not reachable. Is the demo still running?", true);
    return;
  }
  if (!answer.channel) {
    setStatus(failure("Opening the app", answer), true);
    return;
  }
  state.surface = tab;
  state.user = user;
  state.channel = answer.channel;
  state.version = null;
  state.homeKey = null;
  state.modalKey = null;
  history.replaceState(null, "", `#app=${tab}&user=${encodeURIComponent(user)}`);
  setStatus(answer.ok ? "" : failure("Opening the app", answer), !answer.ok);
  renderChannels();
  renderPersonas();
  if (state.poll) state.poll.abort();
}

function setConnection(live) {
  const node = $("connection");
  node.textContent = live ? "live" : "reconnecting…";
  node.className = `connection ${live ? "live" : "down"}`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function pollForever() {
  for (;;) {
    const controller = new AbortController();
    state.poll = controller;
    const params = new URLSearchParams({ channel: state.channel, user: state.user });
    if (state.version !== null) params.set("after", String(state.version));
    try {
      const response = await fetch(`${API}messages?${params}`, { signal: controller.signal });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const view = await response.json();
      setConnection(true);
      if (view.channel !== state.channel || view.user !== state.user) continue;
      state.version = view.version;
      state.view = view;
      if (Array.isArray(view.hints) && view.hints.join("\n") !== state.ws.hints.join("\n")) {
        state.ws.hints = view.hints; // they name jobs that exist now
        renderHints();
      }
      if (view.counts[view.channel] !== undefined) state.seen[view.channel] = view.counts[view.channel];
      for (const id of Object.keys(view.counts)) if (state.seen[id] === undefined) state.seen[id] = view.counts[id];
      if (state.surface === "home") renderHome(view.home);
      else renderMessages(view);
      renderModals(view.modals);
      renderChannels();
    } catch (error) {
      if (error.name === "AbortError") continue;
      setConnection(false);
      await sleep(1000);
    }
  }
}

async function start() {
  const response = await fetch(`${API}workspace`);
  state.ws = await response.json();
  document.title = state.ws.title;
  $("team-name").textContent = state.ws.title;
  $("notice").textContent = state.ws.notice || "";
  const wanted = new URLSearchParams(location.hash.slice(1));
  const channel = state.ws.channels.find((c) => c.id === wanted.get("channel")) || state.ws.channels[0];
  const user = state.ws.personas.find((p) => p.id === wanted.get("user")) || state.ws.personas[0];
  state.channel = channel.id;
  state.user = user.id;
  try {
    // Slack sets a user's time zone from their device: this page's becomes the personas', so the times
    // the bot writes in a user's zone (users.info) and the pickers here are in the zone the page shows.
    await postJson("time_zone", { tz: Intl.DateTimeFormat().resolvedOptions().timeZone });
  } catch (error) {
    // the users keep the emulator's zone
  }
  renderHints();
  renderShortcuts();
  renderChannels();
  renderPersonas();
  $("composer").addEventListener("submit", sendCommand);
  $("shortcuts").addEventListener("click", () => toggleShortcuts());
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") toggleShortcuts(false);
  });
  const tab = wanted.get("app");
  if (tab === "home" || tab === "messages") await openApp(tab, user.id);
  pollForever();
}

document.addEventListener("DOMContentLoaded", () => {
  start().catch(() => setConnection(false));
});

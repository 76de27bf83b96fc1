// The playground page: two Telegram chats with the bot, kept live over Server-Sent Events.
// Plain JavaScript, no build step, no libraries. Bot messages arrive as the Telegram HTML the
// bot sent; they are rebuilt element by element from Telegram's few tags, never assigned as HTML.
"use strict";

const page = {
  state: null,
  influencerId: null,
  shownToast: 0,
  rendered: new Map(), // chat element → JSON of what it shows
  hints: new Map(), // chat element → what an empty chat shows
};

// --- talking to the playground -----------------------------------------------------------------

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

function chatIdOf(role) {
  if (!page.state) return null;
  return role === "manager" ? page.state.manager.id : page.influencerId;
}

function sendText(role, text) {
  const chatId = chatIdOf(role);
  if (chatId === null || !text.trim()) return Promise.resolve();
  return post(`/api/chats/${chatId}/messages`, { text }).catch(showError(role));
}

function press(role, messageId, data, button) {
  button.classList.add("pending");
  const chatId = chatIdOf(role);
  post(`/api/chats/${chatId}/presses`, { message_id: messageId, data }).catch(showError(role));
}

function showError(role) {
  return (error) => toast(phone(role), String(error.message || error), false);
}

// --- links that Telegram would open itself -----------------------------------------------------

// https://t.me/<our bot> and https://t.me/<our bot>?start=<payload> open the influencer's chat.
function botLink(href) {
  if (!page.state) return null;
  let url;
  try {
    url = new URL(href);
  } catch {
    return null;
  }
  const host = url.hostname.toLowerCase();
  const name = url.pathname.replace(/^\//, "").toLowerCase();
  if (!["t.me", "telegram.me"].includes(host)) return null;
  if (name !== page.state.bot.username.toLowerCase()) return null;
  return { start: url.searchParams.get("start") };
}

function openLink(href) {
  const link = botLink(href);
  if (link) {
    const input = phone("influencer").querySelector(".composer input");
    input.focus();
    if (link.start !== null) sendText("influencer", `/start ${link.start}`);
    return;
  }
  // Like Telegram's URL buttons: the browser opens the link (here in a popup window).
  window.open(href, "_blank", "popup=yes,width=700,height=880");
}

document.addEventListener("click", (event) => {
  const anchor = event.target.closest(".bubble a[href]:not(.document)");
  if (!anchor) return;
  event.preventDefault();
  openLink(anchor.href);
});

// --- Telegram HTML → DOM ---------------------------------------------------------------------

const TAGS = {
  b: "b", strong: "b", i: "i", em: "i", u: "u", ins: "u", s: "s", strike: "s", del: "s",
  code: "code", pre: "pre", blockquote: "blockquote", a: "a", "tg-spoiler": "span", span: "span",
  "tg-emoji": "span",
};
// What Telegram clients make clickable in plain text: links and /commands.
const CLICKABLE = /(https?:\/\/[^\s<>"]+|(?<=^|\s)\/[A-Za-z0-9_]{1,32}\b)/g;

function telegramHtml(html) {
  const parsed = new DOMParser().parseFromString(`<body>${html}</body>`, "text/html");
  const fragment = document.createDocumentFragment();
  rebuild(parsed.body, fragment, false);
  return fragment;
}

function rebuild(from, to, inLink) {
  for (const node of from.childNodes) {
    if (node.nodeType === Node.TEXT_NODE) {
      if (inLink) to.append(node.textContent);
      else clickable(node.textContent, to);
      continue;
    }
    if (node.nodeType !== Node.ELEMENT_NODE) continue;
    const tag = node.tagName.toLowerCase();
    const mapped = TAGS[tag];
    if (!mapped) {
      rebuild(node, to, inLink);
      continue;
    }
    const element = document.createElement(mapped);
    if (tag === "tg-spoiler" || (tag === "span" && node.classList.contains("tg-spoiler"))) {
      element.className = "spoiler";
      element.addEventListener("click", () => element.classList.add("revealed"));
    }
    if (tag === "a") {
      const href = node.getAttribute("href") || node.textContent;
      if (/^(https?:|tg:)/i.test(href)) element.href = href;
    }
    rebuild(node, element, inLink || tag === "a");
    to.append(element);
  }
}

function clickable(text, to) {
  let last = 0;
  for (const match of text.matchAll(CLICKABLE)) {
    let found = match[0];
    if (found.startsWith("http")) found = found.replace(/[.,;:!?)]+$/, "");
    to.append(text.slice(last, match.index));
    if (found.startsWith("/")) {
      const command = document.createElement("span");
      command.className = "command";
      command.textContent = found;
      command.addEventListener("click", (event) => {
        const role = event.target.closest(".phone").dataset.chat;
        sendText(role, found);
      });
      to.append(command);
    } else {
      const anchor = document.createElement("a");
      anchor.href = found;
      anchor.textContent = found;
      to.append(anchor);
    }
    last = match.index + found.length;
  }
  to.append(text.slice(last));
}

// --- rendering ---------------------------------------------------------------------------------

function phone(role) {
  return document.querySelector(`.phone[data-chat="${role}"]`);
}

function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function messageElement(role, item) {
  const wrapper = document.createElement("div");
  wrapper.className = `msg ${item.from}`;
  const bubble = document.createElement("div");
  bubble.className = "bubble";
  const text = document.createElement("div");
  text.className = "text";
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = (item.edited ? "edited " : "") + clock(item.date);
  text.append(meta);
  if (item.from === "person") {
    text.append(item.text);
  } else {
    if (item.kind === "photo" && item.media) {
      // Like Telegram: the picture on top, the caption under it.
      const image = document.createElement("img");
      image.className = "photo";
      image.src = item.media;
      image.alt = item.document_name || "photo";
      bubble.classList.add("with-photo");
      bubble.append(image);
    } else if (item.kind !== "text") {
      const file = document.createElement(item.media ? "a" : "div");
      file.className = "document";
      if (item.media) {
        file.href = item.media;
        file.download = item.document_name || "file";
      }
      file.textContent = `📄 ${item.document_name || item.kind}`;
      text.append(file, "\n");
    }
    text.append(telegramHtml(item.html));
  }
  bubble.append(text);
  wrapper.append(bubble);
  if (item.buttons && item.buttons.length) wrapper.append(keyboard(role, item));
  return wrapper;
}

function keyboard(role, item) {
  const board = document.createElement("div");
  board.className = "keyboard";
  for (const row of item.buttons) {
    const line = document.createElement("div");
    line.className = "kb-row";
    for (const spec of row) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "kb";
      button.textContent = spec.text;
      if (spec.url) {
        button.classList.add("url");
        button.title = spec.url;
        button.addEventListener("click", () => openLink(spec.url));
      } else if (spec.data !== undefined) {
        button.addEventListener("click", () => press(role, item.message_id, spec.data, button));
      } else {
        button.disabled = true;
      }
      line.append(button);
    }
    board.append(line);
  }
  return board;
}

function renderChat(role, items) {
  const box = phone(role).querySelector(".messages");
  const chatId = String(chatIdOf(role));
  const json = JSON.stringify(items);
  if (box.dataset.chatId === chatId && page.rendered.get(box) === json) return;
  page.rendered.set(box, json);
  const changedChat = box.dataset.chatId !== chatId;
  box.dataset.chatId = chatId;
  const stick = changedChat || box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  if (!page.hints.has(box)) page.hints.set(box, box.querySelector(".empty"));
  // Unchanged messages keep their elements (a loaded photo stays loaded, nothing jumps).
  const before = new Map();
  for (const element of box.querySelectorAll(":scope > .msg")) {
    before.set(element.dataset.key, element);
  }
  const elements = items.map((item) => {
    const shown = JSON.stringify(item);
    const old = before.get(`${chatId}:${item.key}`);
    if (old && old.dataset.json === shown) return old;
    const element = messageElement(role, item);
    element.dataset.key = `${chatId}:${item.key}`;
    element.dataset.json = shown;
    return element;
  });
  const hint = page.hints.get(box);
  box.replaceChildren(...(elements.length || !hint ? elements : [hint]));
  if (!stick) return;
  box.scrollTop = box.scrollHeight;
  for (const image of box.querySelectorAll("img.photo")) {
    if (!image.complete) {
      image.addEventListener("load", () => { box.scrollTop = box.scrollHeight; }, { once: true });
    }
  }
}

function renderMenu(role) {
  const list = phone(role).querySelector(".menu-list");
  const commands = page.state.commands[String(chatIdOf(role))] || [];
  list.replaceChildren();
  for (const command of commands) {
    const entry = document.createElement("button");
    entry.type = "button";
    const name = document.createElement("span");
    name.className = "command-name";
    name.textContent = `/${command.command}`;
    const words = document.createElement("span");
    words.className = "command-description";
    words.textContent = command.description;
    entry.append(name, words);
    entry.addEventListener("click", () => {
      list.hidden = true;
      const input = phone(role).querySelector(".composer input");
      if (command.command === "invite") {
        input.value = "/invite @";
        input.focus();
      } else {
        sendText(role, `/${command.command}`);
      }
    });
    list.append(entry);
  }
}

function toast(target, text, alert) {
  const box = target.querySelector(".toast");
  box.textContent = text;
  box.classList.toggle("alert", alert);
  box.hidden = false;
  clearTimeout(box.timer);
  if (alert) box.onclick = () => { box.hidden = true; };
  else box.timer = setTimeout(() => { box.hidden = true; }, 2600);
}

function renderInfluencers() {
  const select = document.getElementById("influencer");
  const people = page.state.influencers;
  // An influencer just added may not be in this state yet (the live stream and the answer to
  // "+ New influencer" race): keep the choice, the next state has them.
  if (page.influencerId === null && people.length) page.influencerId = people[0].id;
  const wanted = people.map((p) => `${p.id}:${p.name}`).join("|");
  if (select.dataset.people !== wanted) {
    select.dataset.people = wanted;
    select.replaceChildren(
      ...people.map((p) => {
        const option = document.createElement("option");
        option.value = String(p.id);
        option.textContent = `${p.name} (${p.language})`;
        return option;
      }),
    );
  }
  select.value = String(page.influencerId);
}

function apply(state) {
  page.state = state;
  for (const name of document.querySelectorAll(".bot-name")) name.textContent = state.bot.name;
  const manager = state.manager;
  document.getElementById("manager-name").textContent = `${manager.name} (@${manager.username})`;
  renderInfluencers();
  renderChat("manager", state.chats[String(manager.id)] || []);
  renderChat("influencer", state.chats[String(page.influencerId)] || []);
  renderMenu("manager");
  renderMenu("influencer");
  renderPlatform(state.platform);
  for (const item of state.toasts) {
    if (item.id <= page.shownToast) continue;
    page.shownToast = item.id;
    const role = item.chat_id === manager.id ? "manager" : "influencer";
    if (role === "manager" || item.chat_id === page.influencerId) {
      toast(phone(role), item.text, item.alert);
    }
  }
}

// --- Facebook's side: what happens to a connection at Facebook after the login -----------------

const facebook = { loading: false, again: false };

function day(iso) {
  return new Date(iso).toLocaleDateString([], { day: "numeric", month: "short", year: "numeric" });
}

// The health in words, as the brand's console says it ("⚠️ broken: a permission was removed").
function describeConnection(view) {
  const c = view.connection;
  if (!c) return `${view.name} has no connection yet`;
  if (!c.active) return `${view.name}'s connection ended: ${c.reason_words || c.health_words}`;
  const health = c.reason_words ? `${c.health_words}: ${c.reason_words}` : c.health_words;
  const via = c.path === "instagram" ? `Instagram Login → @${c.instagram}` : `Page ${c.page} → @${c.instagram}`;
  const parts = [via, health];
  parts.push(c.checked_at ? `checked ${clock(Date.parse(c.checked_at) / 1000)}` : "not checked yet");
  if (c.data_access_expires_at) parts.push(`data access until ${day(c.data_access_expires_at)}`);
  return parts.join(" · ");
}

function influencerName(id) {
  const person = page.state && page.state.influencers.find((p) => p.id === id);
  return person ? person.name : "";
}

// Another influencer chosen: nothing of the one before stays shown (nor clickable on their Page)
// while theirs is on its way.
function forgetFacebookView() {
  const panel = document.getElementById("facebook");
  const name = influencerName(page.influencerId);
  document.getElementById("facebook-connection").textContent = name ? `${name} …` : "";
  document.getElementById("facebook-said").textContent = "";
  for (const button of panel.querySelectorAll("[data-needs-page]")) button.disabled = true;
}

function showFacebookView(view) {
  const panel = document.getElementById("facebook");
  document.getElementById("facebook-connection").textContent = describeConnection(view);
  const outage = document.getElementById("facebook-outage");
  outage.dataset.down = String(!view.graph_down);
  outage.textContent = view.graph_down ? "Facebook back up" : "Facebook down";
  outage.classList.toggle("alert", view.graph_down);
  const connected = Boolean(view.connection && view.connection.active);
  // A connection made with Instagram Login has no Facebook account, no Page and no 90-day rule:
  // only the influencer's own actions (at Instagram) apply to it.
  const instagram = Boolean(view.connection && view.connection.path === "instagram");
  for (const button of panel.querySelectorAll("[data-needs-page]")) {
    button.disabled = !connected || instagram;
  }
  for (const control of panel.querySelectorAll("[data-facebook-only]")) {
    if (control.dataset.title === undefined) control.dataset.title = control.title;
    control.disabled = instagram;
    control.title = instagram ?
      "Not for a connection made with Instagram Login (no Facebook account, no Page)" :
      control.dataset.title;
  }
  // Only an Instagram Login connection has an account type to switch: not shown for others.
  for (const control of panel.querySelectorAll("[data-instagram-only]")) {
    control.hidden = !instagram;
    control.disabled = !connected || !instagram;
  }
  document.getElementById("check-now").disabled = !view.can_check_now;
  if (view.check_interval_seconds) {
    const seconds = view.check_interval_seconds;
    const every = seconds % 60 === 0 ?
      `every ${seconds === 60 ? "minute" : `${seconds / 60} minutes`}` : `every ${seconds} seconds`;
    document.getElementById("check-now").title =
      `Runs the bot's health check of every connection now (by itself it checks ${every} here)`;
  }
}

// The summary line shows the influencer's connection even with the panel closed. One request at
// a time; an answer about an influencer no longer chosen is dropped and asked again.
async function refreshFacebook() {
  if (page.influencerId === null) return;
  if (facebook.loading) {
    facebook.again = true;
    return;
  }
  facebook.loading = true;
  const asked = page.influencerId;
  try {
    const response = await fetch(`/api/influencers/${asked}/facebook`);
    if (!response.ok) return;
    const view = await response.json();
    if (asked === page.influencerId) showFacebookView(view);
    else facebook.again = true;
  } catch {
    // The live stream says when the playground is back; its next state asks again.
  } finally {
    facebook.loading = false;
    if (facebook.again) {
      facebook.again = false;
      refreshFacebook();
    }
  }
}

// A second tap while the first is on its way does nothing: the button waits for the answer.
async function facebookDo(button, path, body) {
  if (button.classList.contains("pending")) return;
  const said = document.getElementById("facebook-said");
  button.classList.add("pending");
  button.setAttribute("aria-busy", "true");
  try {
    const answer = await post(path, body);
    said.textContent = answer.text;
    said.classList.remove("alert");
  } catch (error) {
    said.textContent = String(error.message || error);
    said.classList.add("alert");
  } finally {
    button.classList.remove("pending");
    button.removeAttribute("aria-busy");
    refreshFacebook();
  }
}

// One group of buttons at a time (a tab each), so the panel stays two short rows.
function selectFacebookTab(tab, focus) {
  for (const other of tab.parentElement.querySelectorAll('[role="tab"]')) {
    const chosen = other === tab;
    other.setAttribute("aria-selected", String(chosen));
    other.tabIndex = chosen ? 0 : -1;
    document.getElementById(other.getAttribute("aria-controls")).hidden = !chosen;
  }
  if (focus) tab.focus();
}

function wireFacebookTabs() {
  const tabs = [...document.querySelectorAll('.facebook-tabs [role="tab"]')];
  tabs.forEach((tab, index) => {
    tab.addEventListener("click", () => selectFacebookTab(tab, false));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      event.preventDefault();
      selectFacebookTab(tabs[(index + step + tabs.length) % tabs.length], true);
    });
  });
}

function wireFacebook() {
  const panel = document.getElementById("facebook");
  panel.addEventListener("toggle", () => {
    // The panel takes room from the chat under it: keep showing its newest messages.
    const box = phone("influencer").querySelector(".messages");
    requestAnimationFrame(() => { box.scrollTop = box.scrollHeight; });
    refreshFacebook();
  });
  wireFacebookTabs();
  for (const button of panel.querySelectorAll("[data-action]")) {
    button.addEventListener("click", () => {
      if (page.influencerId === null) return;
      const body = { action: button.dataset.action };
      if (body.action === "remove_permission") {
        body.permission = document.getElementById("facebook-permission").value;
      }
      facebookDo(button, `/api/influencers/${page.influencerId}/facebook`, body);
    });
  }
  const outage = document.getElementById("facebook-outage");
  outage.addEventListener("click", () => {
    facebookDo(outage, "/api/facebook/outage", { down: outage.dataset.down === "true" });
  });
  const checkNow = document.getElementById("check-now");
  checkNow.addEventListener("click", () => facebookDo(checkNow, "/api/health-checks", {}));
}

// --- the platform: the brand's webhook receiver and read API client -----------------------------

const platform = { shown: "", seen: 0 };

function clockSeconds(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], {
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

function span(className, text) {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text;
  return element;
}

const SIGNATURE_WORDS = {
  ok: "signature ✓",
  mismatch: "signature ✗ (another secret)",
  stale: "signature ✗ (too old)",
  missing: "signature ✗ (none)",
  no_secret: "signature not checked",
};

function platformEvent(event) {
  const item = document.createElement("li");
  item.className = "platform-event";
  item.classList.toggle("failed", event.answered >= 300 || !event.signature_ok);
  const line = document.createElement("div");
  line.className = "line";
  line.append(span("type", event.type));
  if (event.handle) line.append(span("handle", `@${event.handle}`));
  if (event.reason) line.append(span("reason", event.reason));
  line.append(span("time", clockSeconds(event.at)));
  const meta = document.createElement("div");
  meta.className = "meta-line";
  const id = document.createElement("code");
  id.textContent = event.id;
  const signature = span(`signature ${event.signature_ok ? "ok" : "bad"}`,
    SIGNATURE_WORDS[event.signature] || event.signature);
  const answered = span(`answered${event.answered >= 300 ? " failed" : ""}`,
    `answered ${event.answered}`);
  meta.append(id, " · ", signature, " · ", answered);
  if (event.rechecked) meta.append(" · ", span("again", "checked again with the new secret"));
  if (event.again) meta.append(" · ", span("again", "again (same event id)"));
  item.append(line, meta);
  return item;
}

function renderPlatform(view) {
  if (!view) return;
  const json = JSON.stringify(view);
  if (json === platform.shown) return;
  platform.shown = json;
  document.getElementById("platform-brand").textContent = view.brand ? `of ${view.brand}` : "";
  const info = document.getElementById("platform-webhook-info");
  const apiInfo = document.getElementById("platform-api-info");
  info.classList.toggle("alert", Boolean(view.problem));
  apiInfo.classList.toggle("alert", Boolean(view.problem));
  if (view.attached) {
    info.textContent = `Receives the brand's webhooks at ${view.webhook_url} and checks each ` +
      "signature with the secret the bot gave it, as docs/webhooks.md shows.";
    apiInfo.textContent = `Calls ${view.api_url}/api/v1/… with the brand's API key ` +
      `(${view.key_prefix}…). Page tokens are shown only by their last 4 characters.`;
    if (view.webhook_note) info.textContent += ` ${view.webhook_note}`;
    if (view.key_note) apiInfo.textContent += ` ${view.key_note}`;
  } else if (view.problem) {
    info.textContent = `No webhook: ${view.problem}.`;
    apiInfo.textContent = `No API key: ${view.problem}.`;
  } else {
    info.textContent = apiInfo.textContent = "Maria has no brand yet: her first /invite makes " +
      "it, and the playground gives it a webhook to here and an API key then.";
  }
  document.getElementById("platform-fail").checked = view.failing;
  document.getElementById("platform-events").replaceChildren(...view.events.map(platformEvent));
  document.getElementById("platform-events-empty").hidden = view.events.length > 0;
  for (const id of ["platform-count", "platform-toggle-count"]) {
    const count = document.getElementById(id);
    count.textContent = String(view.received);
    count.classList.toggle("fresh", view.received > platform.seen);
  }
  if (platformVisible()) platform.seen = view.received;
}

function platformVisible() {
  return getComputedStyle(document.getElementById("platform-pane")).display !== "none";
}

function showAnswer(answer) {
  document.getElementById("platform-answer").hidden = false;
  document.getElementById("platform-request").textContent = answer.request;
  const status = document.getElementById("platform-status");
  status.textContent = answer.status ? `HTTP ${answer.status}` : "no answer";
  status.classList.toggle("alert", !(answer.status >= 200 && answer.status < 300));
  document.getElementById("platform-json").textContent = JSON.stringify(answer.body, null, 2);
}

async function platformGet(button, path) {
  if (button.classList.contains("pending")) return null;
  button.classList.add("pending");
  button.setAttribute("aria-busy", "true");
  try {
    const response = await fetch(path);
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || response.statusText);
    showAnswer(answer);
    return answer;
  } catch (error) {
    showAnswer({ request: `GET ${path}`, status: 0, body: String(error.message || error) });
    return null;
  } finally {
    button.classList.remove("pending");
    button.removeAttribute("aria-busy");
  }
}

function platformConnection(row) {
  const item = document.createElement("li");
  item.className = "platform-connection";
  const health = row.health_reason ? `${row.health}: ${row.health_reason}` : row.health;
  const followers = row.followers_count === null ? "" : ` · ${row.followers_count.toLocaleString()} followers`;
  const what = span("what", `@${row.handle} · ${row.connection_status} · ${health}${followers}`);
  const read = document.createElement("button");
  read.type = "button";
  read.textContent = "Read";
  read.title = "GET /api/v1/connections/{id}: the connection with its Page access token";
  read.setAttribute("aria-label", `Read @${row.handle}`);
  read.addEventListener("click", () => {
    platformGet(read, `/api/platform/connections/${row.invitation_id}`);
  });
  item.append(what, read);
  return item;
}

function wirePlatform() {
  const toggle = document.getElementById("platform-toggle");
  const setOpen = (open) => {
    document.body.classList.toggle("platform-open", open);
    toggle.setAttribute("aria-expanded", String(open));
    if (open && page.state) {
      platform.shown = "";
      renderPlatform(page.state.platform);
    }
  };
  toggle.addEventListener("click", () => {
    setOpen(!document.body.classList.contains("platform-open"));
  });
  document.getElementById("platform-close").addEventListener("click", () => setOpen(false));
  const tabs = [...document.querySelectorAll('.platform-tabs [role="tab"]')];
  tabs.forEach((tab, index) => {
    tab.addEventListener("click", () => selectFacebookTab(tab, false));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      event.preventDefault();
      selectFacebookTab(tabs[(index + step + tabs.length) % tabs.length], true);
    });
  });
  const fail = document.getElementById("platform-fail");
  fail.addEventListener("change", () => {
    post("/api/platform/answer", { fail: fail.checked }).catch(() => {
      fail.checked = !fail.checked;
    });
  });
  const list = document.getElementById("platform-list");
  list.addEventListener("click", async () => {
    const answer = await platformGet(list, "/api/platform/connections");
    const rows = answer && answer.body && Array.isArray(answer.body.data) ? answer.body.data : [];
    document.getElementById("platform-connections").replaceChildren(
      ...rows.map(platformConnection),
    );
  });
}

function chooseInfluencer(id) {
  const changed = id !== page.influencerId;
  page.influencerId = id;
  if (page.state) apply(page.state);
  if (changed) {
    forgetFacebookView();
    refreshFacebook();
  }
}

// --- wiring ------------------------------------------------------------------------------------

function wire() {
  for (const role of ["manager", "influencer"]) {
    const target = phone(role);
    const form = target.querySelector(".composer");
    const input = form.querySelector("input");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = input.value;
      input.value = "";
      sendText(role, text);
    });
    target.querySelector(".menu-button").addEventListener("click", () => {
      const list = target.querySelector(".menu-list");
      list.hidden = !list.hidden || !list.childElementCount;
    });
  }
  document.querySelector(".suggest").addEventListener("click", (event) => {
    sendText("manager", event.target.textContent);
  });
  document.getElementById("influencer").addEventListener("change", (event) => {
    chooseInfluencer(Number(event.target.value));
  });
  wireFacebook();
  wirePlatform();
  document.getElementById("new-influencer").addEventListener("click", async () => {
    const language = document.getElementById("new-language").value;
    try {
      const person = await post("/api/influencers", { language });
      chooseInfluencer(person.id);
    } catch (error) {
      showError("influencer")(error);
    }
  });

  const status = document.getElementById("status");
  const events = new EventSource("/api/events");
  events.addEventListener("state", (event) => {
    status.dataset.live = "true";
    status.textContent = "live";
    apply(JSON.parse(event.data));
    refreshFacebook();
  });
  events.addEventListener("error", () => {
    status.dataset.live = "false";
    status.textContent = "reconnecting…";
  });
}

wire();

// A real browser on a reveal page: headless Chromium, driven over the DevTools protocol on a
// pipe (no port, no package). Run by `tests/it/browser.rs`.
//
// Usage: node browser_reveal.mjs CHROMIUM PAGE_URL [PERSON PASSPHRASE]
// Opens PAGE_URL; with PERSON, signs in on the private page's form, else presses the one-time
// link's button; then presses the copy button and reads the clipboard back. Waits on the
// browser's load events, never on timers. Prints one JSON line: the page's title (h1), whether
// the secret is shown and is what was copied, the copy button's text after the press, the
// headers the browser sent with its post, and any console error or CSP violation. Never prints
// the secret.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [chromium, url, person, passphrase] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "tw-chromium-"));
const browser = spawn(
  chromium,
  [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--remote-debugging-pipe",
    `--user-data-dir=${profile}`,
    "about:blank",
  ],
  // Its own process group, so that its helper processes (renderer, GPU, zygote) die with it.
  { stdio: ["ignore", "ignore", "ignore", "pipe", "pipe"], detached: true },
);
// Prints the result, then removes the profile once the browser is gone and exits. The removal
// is best effort: a helper process that outlives the browser for a moment may still write into
// the profile, and a leftover temporary folder must not fail a result already printed.
let finishing = false;
const cleanUp = (code) => {
  try {
    rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
  } catch (e) {
    console.error(`could not remove ${profile}: ${e.message}`);
  }
  process.exit(code);
};
const done = (out, code = 0) => {
  finishing = true;
  console.log(JSON.stringify(out));
  if (browser.exitCode !== null || browser.signalCode !== null) cleanUp(code);
  browser.once("exit", () => cleanUp(code));
  try {
    process.kill(-browser.pid, "SIGKILL");
  } catch {
    browser.kill("SIGKILL");
  }
};
browser.on("exit", (code) => {
  if (!finishing) done({ error: `chromium exited (${code}) before the end` }, 1);
});

// The protocol: JSON messages ended by a NUL byte, commands written to fd 3, answers on fd 4.
let nextId = 0;
const answers = new Map();
const listeners = [];
let buffered = "";
browser.stdio[4].on("data", (chunk) => {
  buffered += chunk.toString("utf8");
  let end;
  while ((end = buffered.indexOf("\0")) >= 0) {
    const msg = JSON.parse(buffered.slice(0, end));
    buffered = buffered.slice(end + 1);
    if (msg.id !== undefined && answers.has(msg.id)) {
      const { resolve, reject } = answers.get(msg.id);
      answers.delete(msg.id);
      msg.error ? reject(new Error(`${msg.error.message}`)) : resolve(msg.result);
    } else if (msg.method) {
      for (const l of [...listeners]) l(msg);
    }
  }
});
const send = (method, params = {}, sessionId) =>
  new Promise((resolve, reject) => {
    const id = ++nextId;
    answers.set(id, { resolve, reject });
    browser.stdio[3].write(JSON.stringify({ id, method, params, sessionId }) + "\0");
  });
const next = (method, sessionId) =>
  new Promise((resolve) => {
    const l = (msg) => {
      if (msg.method === method && msg.sessionId === sessionId) {
        listeners.splice(listeners.indexOf(l), 1);
        resolve(msg.params);
      }
    };
    listeners.push(l);
  });

const problems = [];
const posted = [];
listeners.push((msg) => {
  if (msg.method === "Runtime.exceptionThrown") problems.push(msg.params.exceptionDetails.text);
  if (msg.method === "Log.entryAdded" && msg.params.entry.level === "error")
    problems.push(`${msg.params.entry.source}: ${msg.params.entry.text}`);
  if (msg.method === "Network.requestWillBeSentExtraInfo") {
    const h = Object.fromEntries(
      Object.entries(msg.params.headers).map(([k, v]) => [k.toLowerCase(), v]),
    );
    if (h[":method"] === "POST" || h["content-type"])
      posted.push({ origin: h.origin ?? null, sec_fetch_site: h["sec-fetch-site"] ?? null });
  }
});

const { targetInfos } = await send("Target.getTargets");
const target = targetInfos.find((t) => t.type === "page");
const { sessionId } = await send("Target.attachToTarget", { targetId: target.targetId, flatten: true });
const page = (method, params) => send(method, params, sessionId);
const evaluate = async (expression) =>
  (await page("Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true })).result.value;
await page("Page.enable");
await page("Runtime.enable");
await page("Log.enable");
await page("Network.enable");
// A headless page never has the focus that the clipboard API asks for.
await page("Emulation.setFocusEmulationEnabled", { enabled: true });
await send("Browser.grantPermissions", {
  origin: new URL(url).origin,
  permissions: ["clipboardReadWrite", "clipboardSanitizedWrite"],
});

let loaded = next("Page.loadEventFired", sessionId);
await page("Page.navigate", { url });
await loaded;
loaded = next("Page.loadEventFired", sessionId);
const submitted = await evaluate(
  person === undefined
    ? `(() => { const b = document.querySelector('form button'); if (!b) return false; b.click(); return true; })()`
    : `(() => {
         const f = document.querySelector('form');
         if (!f) return false;
         f.querySelector('input[name=person]').value = ${JSON.stringify(person)};
         f.querySelector('input[name=passphrase]').value = ${JSON.stringify(passphrase)};
         f.querySelector('button').click();
         return true;
       })()`,
);
if (!submitted) done({ error: "no form to submit on the page", title: await evaluate("document.title") }, 1);
await loaded;

const shown = await evaluate(`(async () => {
  const secret = document.getElementById('secret');
  const button = document.getElementById('copy');
  const out = {
    title: document.querySelector('h1')?.textContent ?? null,
    shows_secret: !!secret && secret.textContent.startsWith('apiv3_'),
    copy_button_visible: !!button && !button.hidden,
  };
  if (button && !button.hidden) {
    const changed = new Promise((r) =>
      new MutationObserver((_, o) => { o.disconnect(); r(); })
        .observe(button, { childList: true, characterData: true, subtree: true }));
    button.click();
    await changed;
    out.copy_button_says = button.textContent;
    try {
      out.copied_the_secret = (await navigator.clipboard.readText()) === secret.textContent;
    } catch (e) {
      out.copied_the_secret = 'clipboard unreadable: ' + e.name;
    }
  }
  return out;
})()`);
done({ ...shown, posted, problems });

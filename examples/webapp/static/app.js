// The demo page: POST the form to /v1/stream and show each server-sent event as it arrives.
//
// fetch() rather than EventSource: the stream is a POST with a JSON body (the same
// validation as the JSON endpoints), and aborting the fetch closes the connection,
// which cancels the rollout on the server.
"use strict";

// A read-only view of the page's progress, for people in the console and for tests.
const hook = { state: "idle", events: [], result: null, error: null, imageLoaded: false };
window.genevolve = hook;

let controller = null;

const $ = (id) => document.getElementById(id);

function setStatus(text, kind) {
  const status = $("status");
  status.textContent = text;
  status.className = kind || "";
}

function describe(kind, data) {
  switch (kind) {
    case "round_started":
      return `Round ${data.round} started${data.final ? " (final round)" : ""}`;
    case "model_replied":
      return `Model replied in ${data.seconds.toFixed(2)} s (${data.finish_reason || "?"})`;
    case "tool_call_started":
      return `Calling ${data.name} ${JSON.stringify(data.arguments)}`;
    case "tool_call_finished":
      return `${data.name} ${data.ok ? "finished" : "failed"} in ${data.seconds.toFixed(2)} s`;
    case "answered":
      return `Answered: ${data.gen_prompt} (${data.reference_images.length} reference image(s))`;
    case "finished": {
      const s = data.summary;
      return `Rollout ${s.termination} after ${s.rounds} round(s), ${s.timings.total.toFixed(2)} s`;
    }
    case "render_started":
      return "Rendering the image…";
    case "image":
      return `Image ready (${data.width}×${data.height})`;
    case "error":
      return `Error (${data.type}): ${data.message}`;
    case "result":
      return `Done (HTTP status ${data.status})`;
    default:
      return kind;
  }
}

function addEvent(kind, data) {
  // textContent only: event text comes from the model and the web, never markup.
  const item = document.createElement("li");
  item.className = `event ${kind}`;
  const badge = document.createElement("span");
  badge.className = "kind";
  badge.textContent = kind;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = describe(kind, data);
  item.append(badge, text);
  const detail = data.content || data.preview;
  if (detail) {
    const more = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = "details";
    const pre = document.createElement("pre");
    pre.textContent = detail;
    more.append(summary, pre);
    item.append(more);
  }
  $("events").append(item);
  item.scrollIntoView({ block: "nearest" });
}

function showProgram(program) {
  const box = $("program");
  box.replaceChildren();
  const prompt = document.createElement("p");
  prompt.className = "gen-prompt";
  prompt.textContent = program.gen_prompt;
  box.append(prompt);
  const list = document.createElement("ul");
  for (const ref of program.reference_images) {
    const item = document.createElement("li");
    item.textContent = `${ref.img_id}: ${ref.title || ref.url} — ${ref.note}`;
    list.append(item);
  }
  box.append(list);
}

function showImage(image) {
  const img = $("image");
  img.onload = () => {
    hook.imageLoaded = true;
  };
  img.src = image.url;
  $("caption").textContent = `${image.width}×${image.height} PNG`;
  $("figure").hidden = false;
}

function parseFrame(frame) {
  let event = "message";
  const data = [];
  for (const line of frame.split("\n")) {
    if (line === "" || line.startsWith(":")) continue; // ":" lines are keep-alive comments
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? { event, data: JSON.parse(data.join("\n")) } : null;
}

async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const parsed = parseFrame(buffer.slice(0, cut));
      buffer = buffer.slice(cut + 2);
      if (parsed) onEvent(parsed.event, parsed.data);
    }
  }
}

function onEvent(kind, data) {
  hook.events.push({ kind, data });
  addEvent(kind, data);
  if (kind === "answered") showProgram(data);
  if (kind === "image") showImage(data);
  if (kind === "error") hook.error = data;
  if (kind === "result") {
    hook.result = data;
    hook.state = data.status === 200 ? "done" : "failed";
    setStatus(data.status === 200 ? "Done." : `Failed: ${data.error.message}`,
      data.status === 200 ? "ok" : "bad");
  }
}

function reset() {
  $("events").replaceChildren();
  $("program").replaceChildren();
  $("figure").hidden = true;
  $("image").removeAttribute("src");
  Object.assign(hook, { state: "running", events: [], result: null, error: null, imageLoaded: false });
}

async function refusal(response) {
  const payload = await response.json().catch(() => null);
  const message = (payload && payload.error && payload.error.message) || response.statusText;
  if (response.status === 429) {
    return `The server is busy (${message}); retry in ${response.headers.get("Retry-After")} s.`;
  }
  return `Refused (${response.status}): ${message}`;
}

async function run(request) {
  reset();
  controller = new AbortController();
  $("submit").disabled = true;
  $("stop").disabled = false;
  setStatus("Waiting for the agent…", "busy");
  try {
    const response = await fetch("/v1/stream", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify(request),
      signal: controller.signal,
    });
    if (!response.ok) {
      hook.state = "refused";
      hook.error = { status: response.status };
      setStatus(await refusal(response), "bad");
      return;
    }
    setStatus("Running…", "busy");
    await readEvents(response.body, onEvent);
    if (hook.state === "running") {
      hook.state = "failed";
      setStatus("The stream ended early.", "bad");
    }
  } catch (err) {
    const stopped = err.name === "AbortError";
    hook.state = stopped ? "stopped" : "failed";
    setStatus(stopped ? "Stopped; the server cancelled the rollout." : `Failed: ${err}`, "bad");
  } finally {
    controller = null;
    $("submit").disabled = false;
    $("stop").disabled = true;
  }
}

function requestFromForm() {
  const request = { prompt: $("prompt").value, render: $("render").checked };
  const seed = $("seed").value.trim();
  const timeout = $("timeout").value.trim();
  if (seed) request.seed = Number.parseInt(seed, 10);
  if (timeout) request.timeout = Number(timeout);
  return request;
}

$("request-form").addEventListener("submit", (event) => {
  event.preventDefault();
  run(requestFromForm());
});

$("stop").addEventListener("click", () => {
  if (controller) controller.abort();
});

// ?prompt=... fills the form and submits it exactly as a person would.
const initial = new URLSearchParams(window.location.search).get("prompt");
if (initial) {
  $("prompt").value = initial;
  $("request-form").requestSubmit();
}

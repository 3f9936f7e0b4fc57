// The ionlab dashboard: one page for every fleet and VM, kept live by server-sent events.
// Everything a guest or a peer said reaches the page as text (textContent), never as markup.
"use strict";

(function () {
  if (document.body.classList.contains("login")) {
    if (location.search === "?wrong") document.getElementById("wrong").hidden = false;
    return;
  }

  const state = {
    csrf: null,
    csrfHeader: "X-IonLab-CSRF",
    overview: null,
    receivedAt: 0,        // performance.now() when the overview arrived
    rows: new Map(),      // VM name -> row element
    fleets: new Map(),    // fleet name -> fleet element
    eventCount: 0,
    lastEventAt: 0,       // the newest event's time, seconds since 1970 (the server's clock, like generatedAt)
    refreshQueued: false,
  };
  const maxEvents = 500;
  const screenRefreshMs = 5000;
  const $ = (id) => document.getElementById(id);

  // Sets a cell's text, and its tooltip to the same (a narrow column cuts it short).
  function text(element, value) {
    const shown = value == null ? "" : String(value);
    if (element.textContent !== shown) { element.textContent = shown; element.title = shown; }
  }

  function notice(line, bad) {
    const element = $("notice");
    text(element, line);
    element.classList.toggle("bad", !!bad);
  }

  async function getJSON(path) {
    const response = await fetch(path, { credentials: "same-origin", cache: "no-store" });
    if (response.status === 401) { location.href = "/login"; throw new Error("signed out"); }
    if (!response.ok) throw new Error(path + ": " + response.status + " " + (await response.text()));
    return response.json();
  }

  // MARK: the overview: fleets and VM rows

  async function refresh() {
    try {
      state.overview = await getJSON("/api/overview");
      state.receivedAt = performance.now();
      render(state.overview);
      // The server makes the overview at most once every 2 s: one made before the newest event is asked again,
      // or the page would show it until the next periodic refresh.
      if (state.overview.generatedAt < state.lastEventAt) queueRefresh();
    } catch (error) {
      notice("cannot read the lab: " + error.message, true);
    }
  }

  // At most one refresh a second while events come in.
  function queueRefresh() {
    if (state.refreshQueued) return;
    state.refreshQueued = true;
    setTimeout(() => { state.refreshQueued = false; refresh(); }, 1000);
  }

  function fleetKey(vm) { return vm.status.fleet || ""; }

  function render(overview) {
    const groups = new Map();
    for (const fleet of overview.fleets) groups.set(fleet, []);
    for (const vm of overview.vms) {
      const key = fleetKey(vm);
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(vm);
    }
    const scale = timelineScale(overview.vms);
    const container = $("fleets");
    const seen = new Set();
    for (const [fleet, vms] of [...groups.entries()].sort(byFleet)) {
      const element = fleetElement(fleet);
      text(element.querySelector(".fleet-count"), vms.length + (vms.length === 1 ? " VM" : " VMs"));
      const body = element.querySelector("tbody");
      for (const vm of vms.sort((a, b) => a.status.name.localeCompare(b.status.name))) {
        const row = rowElement(vm.status.name);
        updateRow(row, vm, scale);
        if (row.parentElement !== body) body.appendChild(row);
        seen.add(vm.status.name);
      }
      if (element.parentElement !== container) container.appendChild(element);
    }
    for (const [name, row] of state.rows) if (!seen.has(name)) { row.remove(); state.rows.delete(name); }
    for (const [fleet, element] of state.fleets) if (!groups.has(fleet)) { element.remove(); state.fleets.delete(fleet); }
    updateSummary(overview);
    updateEventFilters(overview);
    applyFilter();
  }

  function byFleet(a, b) {
    if (a[0] === "") return 1;
    if (b[0] === "") return -1;
    return a[0].localeCompare(b[0]);
  }

  function fleetElement(fleet) {
    let element = state.fleets.get(fleet);
    if (element) return element;
    element = $("fleet-template").content.firstElementChild.cloneNode(true);
    element.dataset.fleet = fleet;
    text(element.querySelector(".fleet-name"), fleet === "" ? "VMs of no fleet" : "fleet " + fleet);
    const down = element.querySelector(".down");
    if (fleet === "") down.remove();
    else down.addEventListener("click", () => {
      if (confirm("Destroy every VM of fleet " + fleet + " and forget the fleet?")) act("/api/fleets/" + encodeURIComponent(fleet) + "/down");
    });
    state.fleets.set(fleet, element);
    return element;
  }

  function rowElement(name) {
    let row = state.rows.get(name);
    if (row) return row;
    row = $("vm-template").content.firstElementChild.cloneNode(true);
    row.dataset.vm = name;
    text(row.querySelector(".name"), name);
    row.querySelector(".restart").addEventListener("click", () => {
      if (confirm("Restart " + name + "?")) act("/api/vms/" + encodeURIComponent(name) + "/restart");
    });
    row.querySelector(".revert").addEventListener("click", () => {
      const snapshot = prompt("Revert " + name + " to which snapshot?");
      if (snapshot) act("/api/vms/" + encodeURIComponent(name) + "/revert", { snapshot });
    });
    screens.observe(row);
    state.rows.set(name, row);
    return row;
  }

  function updateRow(row, vm, scale) {
    const status = vm.status;
    row.dataset.state = status.state;
    row.dataset.agent = status.agent;
    row.dataset.phase = vm.phase;
    row.dataset.search = [status.name, status.fleet, status.backend, status.state, vm.phase, status.step,
      ...Object.entries(vm.facts).map(([k, v]) => k + "=" + v)].join(" ").toLowerCase();
    text(row.querySelector(".backend"), status.backend);
    text(row.querySelector(".state"), status.state);
    text(row.querySelector(".phase"), vm.phase);
    const agent = row.querySelector(".agent");
    text(agent, status.agent + (status.lastHeartbeat ? " · " + age(status.lastHeartbeat) : ""));
    agent.className = "agent " + status.agent;
    text(row.querySelector(".health"), healthText(status.health));
    text(row.querySelector(".step"), status.step || "");
    showFacts(row.querySelector(".facts"), status.name, vm.facts);
    drawTimeline(row.querySelector(".bars"), vm, scale);
    row.dataset.screen = vm.hasScreen ? "yes" : "no";
    if (!vm.hasScreen) row.querySelector(".screen img").hidden = true;
  }

  // Facts as text; the pictures probes kept (picture.NAME) as links to them, the session recordings animated.
  function showFacts(cell, vm, facts) {
    const keys = Object.keys(facts).sort();
    const pictures = keys.filter((k) => k.startsWith("picture."));
    cell.replaceChildren(keys.filter((k) => !k.startsWith("picture.")).map((k) => k + " " + facts[k]).join("\n"));
    if (pictures.length === 0) return;
    const line = document.createElement("div");
    line.className = "pictures";
    for (const key of pictures) {
      const name = key.slice("picture.".length);
      const link = document.createElement("a");
      link.href = "/api/vms/" + encodeURIComponent(vm) + "/pictures/" + encodeURIComponent(name);
      link.target = "_blank";
      link.rel = "noopener";
      link.textContent = name.endsWith("_session") ? name + " ▶" : name;
      line.append(link, " ");
    }
    cell.append(line);
  }

  function age(seconds) {
    const ago = Math.max(0, state.overview.generatedAt - seconds);
    return ago < 90 ? Math.round(ago) + " s ago" : Math.round(ago / 60) + " min ago";
  }

  function healthText(health) {
    if (!health) return "";
    const load = health.load && health.load.length ? "load " + health.load[0].toFixed(2) : "";
    const memory = health.memoryTotalBytes ? Math.round(100 * (1 - health.memoryAvailableBytes / health.memoryTotalBytes)) + "% mem" : "";
    const disk = health.diskTotalBytes ? Math.round(100 * (1 - health.diskFreeBytes / health.diskTotalBytes)) + "% disk" : "";
    return [load, memory, disk].filter(Boolean).join(" · ");
  }

  // MARK: timelines: one scale for every row, so the slow phase of a slow VM stands out

  function elapsed(vm) {
    // Seconds since the VM's origin, now: the overview's time plus what passed since it arrived.
    if (vm.origin == null) return 0;
    return state.overview.generatedAt - vm.origin + (performance.now() - state.receivedAt) / 1000;
  }

  function barEnd(vm, bar) { return bar.end == null ? Math.max(bar.start, elapsed(vm)) : bar.end; }

  function timelineScale(vms) {
    let longest = 10;
    for (const vm of vms) for (const bar of vm.timeline) longest = Math.max(longest, barEnd(vm, bar));
    return longest;
  }

  function drawTimeline(element, vm, scale) {
    while (element.children.length > vm.timeline.length) element.lastChild.remove();
    vm.timeline.forEach((bar, index) => {
      let segment = element.children[index];
      if (!segment) { segment = document.createElement("span"); element.appendChild(segment); }
      const end = barEnd(vm, bar);
      segment.className = "bar " + bar.kind + " " + bar.outcome;
      segment.style.left = (100 * bar.start / scale).toFixed(2) + "%";
      segment.style.width = Math.max(0.4, 100 * (end - bar.start) / scale).toFixed(2) + "%";
      segment.title = bar.name + ": " + bar.start.toFixed(1) + " → " + end.toFixed(1) + " s" + (bar.end == null ? " (running)" : "");
    });
    element.dataset.bars = String(vm.timeline.length);
    element.dataset.seconds = vm.timeline.length ? barEnd(vm, vm.timeline[vm.timeline.length - 1]).toFixed(1) : "0";
  }

  // Open bars grow while the page is open.
  setInterval(() => {
    if (!state.overview) return;
    const scale = timelineScale(state.overview.vms);
    for (const vm of state.overview.vms) {
      const row = state.rows.get(vm.status.name);
      if (row && vm.timeline.some((bar) => bar.end == null)) drawTimeline(row.querySelector(".bars"), vm, scale);
    }
  }, 1000);

  function updateSummary(overview) {
    const count = (predicate) => overview.vms.filter(predicate).length;
    text($("summary"), overview.vms.length + " VMs · " + count((vm) => vm.status.state === "ready") + " ready · " +
      count((vm) => vm.status.state === "provisioning") + " provisioning · " + count((vm) => vm.status.agent === "up") + " agents up");
  }

  // MARK: the VM filter

  $("filter").addEventListener("input", applyFilter);
  function applyFilter() {
    const words = $("filter").value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const row of state.rows.values()) row.hidden = !words.every((word) => row.dataset.search.includes(word));
  }

  // MARK: screens: refreshed while their row is in view

  const screens = new IntersectionObserver((entries) => {
    for (const entry of entries) entry.target.classList.toggle("in-view", entry.isIntersecting);
  });

  async function refreshScreens() {
    for (const row of state.rows.values()) {
      if (row.hidden || !row.classList.contains("in-view") || row.dataset.screen !== "yes") continue;
      try {
        const response = await fetch("/api/vms/" + encodeURIComponent(row.dataset.vm) + "/screen", { credentials: "same-origin", cache: "no-store" });
        if (!response.ok) continue;
        const url = URL.createObjectURL(await response.blob());
        const image = row.querySelector(".screen img");
        const previous = image.src;
        image.onload = () => { if (previous.startsWith("blob:")) URL.revokeObjectURL(previous); };
        image.src = url;
        image.hidden = false;
      } catch (error) { /* the next round tries again */ }
    }
    setTimeout(refreshScreens, screenRefreshMs);
  }

  // MARK: live events

  function updateEventFilters(overview) {
    fillSelect($("event-fleet"), overview.fleets);
    fillSelect($("event-vm"), overview.vms.map((vm) => vm.status.name).sort());
  }

  function fillSelect(select, values) {
    const present = new Set([...select.options].slice(1).map((option) => option.value));
    for (const value of values) if (!present.has(value)) {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = value;
      select.appendChild(option);
    }
  }

  function eventShown(item) {
    const fleet = $("event-fleet").value, vm = $("event-vm").value;
    return (!fleet || item.dataset.fleet === fleet) && (!vm || item.dataset.vm === vm);
  }

  $("event-fleet").addEventListener("change", filterEvents);
  $("event-vm").addEventListener("change", filterEvents);
  function filterEvents() { for (const item of $("events").children) item.hidden = !eventShown(item); }

  function addEvent(event) {
    const item = document.createElement("li");
    item.dataset.kind = event.kind;
    item.dataset.fleet = event.fleet || "";
    item.dataset.vm = event.agent || "";
    item.dataset.seq = String(event.seq);
    const time = document.createElement("time");
    time.textContent = new Date(event.time * 1000).toLocaleTimeString();
    const kind = document.createElement("span");
    kind.className = "kind";
    kind.textContent = event.kind;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = [event.fleet, event.agent].filter(Boolean).join("/");
    const message = document.createElement("span");
    message.className = "message";
    message.textContent = event.message;
    item.append(time, kind, who, message);
    item.hidden = !eventShown(item);
    const list = $("events");
    list.insertBefore(item, list.firstChild);
    while (list.children.length > maxEvents) list.lastChild.remove();
    state.eventCount += 1;
  }

  function connectEvents() {
    const source = new EventSource("/api/events");
    source.onopen = () => { text($("live"), "● live"); $("live").className = "live on"; };
    source.onerror = () => { text($("live"), "○ reconnecting"); $("live").className = "live"; };
    source.onmessage = (message) => {
      const event = JSON.parse(message.data);
      addEvent(event);
      state.lastEventAt = Math.max(state.lastEventAt, Number(event.time) || 0);
      queueRefresh();
    };
  }

  // MARK: changes: same origin, with the page's CSRF header

  async function act(path, body) {
    notice("…");
    try {
      const response = await fetch(path, {
        method: "POST", credentials: "same-origin",
        headers: { [state.csrfHeader]: state.csrf, "Content-Type": "application/json" },
        body: JSON.stringify(body || {}),
      });
      const reply = await response.text();
      if (!response.ok) { notice(reply.trim(), true); return; }
      notice(JSON.parse(reply).done);
    } catch (error) {
      notice(error.message, true);
    }
    queueRefresh();
  }

  async function start() {
    const session = await getJSON("/api/session");
    state.csrf = session.csrf;
    state.csrfHeader = session.header;
    await refresh();
    connectEvents();
    setInterval(refresh, 5000);
    refreshScreens();
  }
  start();
})();

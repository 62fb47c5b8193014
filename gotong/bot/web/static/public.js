// The public figures page: fetch the same figures as JSON every few seconds and put them
// in place, without reloading, and say politely (aria-live) when they changed.
(() => {
  const root = document.getElementById("public-figures");
  if (!root || !window.fetch) return;
  const url = root.dataset.figuresUrl;
  const seconds = Math.max(1, Number(root.dataset.refreshSeconds) || 30);
  const lang = root.dataset.lang || "id";
  const numbers = new Intl.NumberFormat(lang);
  const clock = new Intl.DateTimeFormat(lang, {
    hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: root.dataset.timeZone,
  });
  const status = document.getElementById("public-status");
  const money = new Set(["pledge_money_received", "money_delivered"]);

  const format = (key, value) => {
    const number = numbers.format(value);
    return money.has(key) ? "Rp " + number : number;
  };

  // Put a value in an element; whether it changed what the page shows.
  const show = (element, key, value) => {
    // null: fewer households than the page shows, hidden so as not to point at one.
    if (typeof value !== "number" && value !== null) return false;
    const text = value === null ? root.dataset.fewerText : format(key, value);
    if (element.textContent === text) return false;
    element.textContent = text;
    return true;
  };

  const apply = (figures) => {
    let changed = false;
    root.querySelectorAll(".headline [data-figure]").forEach((element) => {
      const key = element.dataset.figure;
      changed = show(element, key, figures.headline[key]) || changed;
    });
    const rows = new Map(figures.areas.map((area) => [String(area.id), area]));
    root.querySelectorAll("tr[data-area]").forEach((row) => {
      const area = rows.get(row.dataset.area);
      if (!area) return;
      row.querySelectorAll("[data-figure]").forEach((cell) => {
        const key = cell.dataset.figure;
        changed = show(cell, key, area[key]) || changed;
      });
    });
    if (changed && status) {
      const time = clock.format(new Date(figures.updated_at));
      status.textContent = root.dataset.changedText.replace("{time}", time);
    }
  };

  const refresh = async () => {
    // Nobody is looking: ask again when the page is shown.
    if (document.hidden) return;
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (response.ok) apply(await response.json());
    } catch (error) {
      // Offline or the server is restarting: the figures shown stay until next time.
    }
  };

  window.setInterval(refresh, seconds * 1000);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refresh();
  });
})();

// The playground: each phone screen is a chat over its own WebSocket. The server sends
// the screen's history on connecting, then each new or redrawn message; the page sends
// what the person types or taps. Nothing is drawn from raw HTML: text goes in textContent.
"use strict";

(() => {
  const screens = document.querySelector(".screens");
  if (!screens) {
    return;
  }
  const reconnecting = screens.dataset.reconnecting;
  const shareContact = screens.dataset.shareContact;
  const language = document.documentElement.lang;

  function setUpScreen(root) {
    const name = root.dataset.screen;
    const list = root.querySelector(".messages");
    const status = root.querySelector(".status");
    const contactButton = root.querySelector("button.share-contact");
    const locationButton = root.querySelector("button.share-location");
    const photoButton = root.querySelector("button.share-photo");
    const form = root.querySelector("form.compose");
    const input = form.querySelector('input[name="text"]');
    let socket = null;
    let delay = 500;

    function send(message) {
      if (!socket || socket.readyState !== WebSocket.OPEN) {
        return false;
      }
      // "yes" again once the server says the message is handled: a tap may redraw a
      // message rather than add one (browser tests wait for it).
      root.dataset.answered = "no";
      socket.send(JSON.stringify(message));
      return true;
    }

    function optionButton(message, option, control) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = control ? "option control" : "option";
      button.textContent = option.label;
      if (message.hint === "multi" && !control) {
        button.setAttribute("aria-pressed", option.selected ? "true" : "false");
      }
      button.addEventListener("click", () => {
        send({ type: "choice", context: message.context || "", option: option.id });
      });
      return button;
    }

    function draw(message) {
      const item = document.createElement("li");
      item.className = message.from === "me" ? "message me" : "message bot";
      item.dataset.id = String(message.id);
      const text = document.createElement("p");
      text.className = "text";
      if (message.parts) {
        // Links the server found in the bot's words (a dashboard sign-in link) are drawn
        // as links; every other piece stays plain text.
        message.parts.forEach((part) => {
          if (part.link && /^https?:\/\//.test(part.link)) {
            const link = document.createElement("a");
            link.href = part.link;
            link.textContent = part.link;
            link.target = "_blank";
            link.rel = "noopener noreferrer";
            text.appendChild(link);
          } else {
            text.appendChild(document.createTextNode(part.text || ""));
          }
        });
      } else {
        text.textContent = message.text;
      }
      item.appendChild(text);
      const options = message.options || [];
      const controls = message.controls || [];
      if (options.length || controls.length) {
        const buttons = document.createElement("div");
        buttons.className = "buttons";
        options.forEach((o) => buttons.appendChild(optionButton(message, o, false)));
        controls.forEach((c) => buttons.appendChild(optionButton(message, c, true)));
        item.appendChild(buttons);
      }
      item.dataset.hint = message.hint || "none";
      item.dataset.contactLabel = message.contact_label || "";
      return item;
    }

    // The share buttons follow the latest bot message: "share my number" when it asks
    // for the phone, "share my location" when it asks where the person is.
    function updateShares() {
      const bots = list.querySelectorAll(".message.bot");
      const last = bots.length ? bots[bots.length - 1] : null;
      const hint = last ? last.dataset.hint : "none";
      contactButton.hidden = hint !== "contact";
      contactButton.textContent = (last && last.dataset.contactLabel) || shareContact;
      locationButton.hidden = hint !== "location";
      if (hint === "location" && last.dataset.contactLabel) {
        locationButton.textContent = last.dataset.contactLabel;
      }
    }

    function scrollDown() {
      list.scrollTop = list.scrollHeight;
    }

    function receive(event) {
      if (event.type === "history") {
        list.replaceChildren(...event.messages.map(draw));
      } else if (event.type === "message") {
        list.appendChild(draw(event.message));
      } else if (event.type === "edit") {
        const old = list.querySelector(`li[data-id="${event.message.id}"]`);
        const fresh = draw(event.message);
        if (old) {
          old.replaceWith(fresh);
        } else {
          list.appendChild(fresh);
        }
      }
      if (event.type === "handled") {
        root.dataset.answered = "yes";
        return;
      }
      updateShares();
      scrollDown();
    }

    function connect() {
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      const url = `${scheme}${location.host}/playground/ws/${name}?lang=${encodeURIComponent(language)}`;
      socket = new WebSocket(url);
      socket.addEventListener("open", () => {
        delay = 500;
        status.hidden = true;
      });
      socket.addEventListener("message", (event) => {
        receive(JSON.parse(event.data));
      });
      socket.addEventListener("close", () => {
        status.textContent = reconnecting;
        status.hidden = false;
        window.setTimeout(connect, delay);
        delay = Math.min(delay * 2, 5000);
      });
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = input.value;
      if (text.trim() && send({ type: "text", text })) {
        input.value = "";
      }
      input.focus();
    });
    contactButton.addEventListener("click", () => send({ type: "contact" }));
    locationButton.addEventListener("click", () => send({ type: "location" }));
    if (photoButton) {
      photoButton.addEventListener("click", () => send({ type: "photo" }));
    }
    connect();
  }

  document.querySelectorAll("section[data-screen]").forEach(setUpScreen);
})();

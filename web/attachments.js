/**
 * The composer's images: picked with the attach button, pasted or dropped, checked before anything is sent, shown
 * as thumbnails that can be removed, then handed over when the message is sent (chat.js uploads them with
 * relay-client.js's `uploadAttachment`). Also how a message shows the images it carries.
 *
 * The checks are the relay's own (layers/relay/relay/config.py and attachments.py), made here first so that a file
 * the relay would refuse is refused at once, with its name in the message, before any request: the type is read
 * from the file's first bytes, as the relay reads it (a PDF named `photo.png` is no image, whatever its name or the
 * browser's guess from it says), and the sizes are the relay's caps. The relay checks again when the message is
 * sent. Thumbnails are `data:` URLs, which the page's policy already allows for images.
 *
 * @module attachments
 */

export const IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp", "image/gif"]; // config.IMAGE_MEDIA_TYPES
export const MAX_IMAGE_BYTES = 3_750_000; // config.MAX_IMAGE_BYTES: Bedrock Converse's cap, the smallest
export const MAX_IMAGES = 4; // config.MAX_IMAGES_PER_MESSAGE
export const MAX_MESSAGE_IMAGE_BYTES = 12_000_000; // config.MAX_MESSAGE_IMAGE_BYTES

// The first bytes of each type (WebP: "RIFF", four bytes of length, "WEBP"), as relay/attachments.py reads them.
const SIGNATURES = [
  { type: "image/png", offset: 0, bytes: [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] },
  { type: "image/jpeg", offset: 0, bytes: [0xff, 0xd8, 0xff] },
  { type: "image/gif", offset: 0, bytes: [..."GIF87a"].map((c) => c.charCodeAt(0)) },
  { type: "image/gif", offset: 0, bytes: [..."GIF89a"].map((c) => c.charCodeAt(0)) },
  { type: "image/webp", offset: 8, bytes: [..."WEBP"].map((c) => c.charCodeAt(0)), riff: true },
];
const RIFF = [..."RIFF"].map((c) => c.charCodeAt(0));

/**
 * The image type a file's bytes are, by their magic number.
 *
 * @param {Blob} file
 * @returns {Promise<string|null>} one of IMAGE_TYPES, or null for anything else
 */
export async function sniffImageType(file) {
  const head = new Uint8Array(await file.slice(0, 12).arrayBuffer());
  const startsWith = (bytes, offset) => bytes.every((byte, index) => head[offset + index] === byte);
  const found = SIGNATURES.find(({ bytes, offset, riff }) => startsWith(bytes, offset) && (!riff || startsWith(RIFF, 0)));
  return found?.type ?? null;
}

/** "3.75 MB": sizes as the messages give them, in the decimal megabytes the caps are written in. */
function megabytes(bytes) {
  return `${(bytes / 1_000_000).toFixed(2).replace(/\.?0+$/, "")} MB`;
}

function dataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

/**
 * @typedef {object} PendingImage
 * @property {Blob} file the image, typed as its bytes are (what `uploadAttachment` declares)
 * @property {string} name the file's name, for its alt text and the messages
 * @property {string} preview a data: URL of it
 */

/**
 * The images waiting in the composer: a list of thumbnails, each with a remove button, and a line that says why a
 * file was refused. Files come from the attach button (a file input it opens), a paste into the message field and
 * a drop anywhere on the chat.
 */
export class ImageTray {
  /**
   * @param {object} elements
   * @param {HTMLUListElement} elements.list where the thumbnails go
   * @param {HTMLElement} elements.error where a refusal is said (role="alert")
   * @param {HTMLButtonElement} elements.button the attach button: it opens `input`, and takes the focus when the
   *   last thumbnail is removed
   * @param {HTMLInputElement} elements.input a hidden `<input type="file">`
   * @param {HTMLElement} elements.pasteTarget where a paste of images adds them (the message field)
   * @param {HTMLElement} elements.dropZone where a drop of files adds them; `data-dropping` while files are over it
   */
  constructor({ list, error, button, input, pasteTarget, dropZone }) {
    this.list = list;
    this.error = error;
    this.button = button;
    /** @type {PendingImage[]} */
    this.images = [];
    input.accept = IMAGE_TYPES.join(",");
    button.addEventListener("click", () => input.click());
    input.addEventListener("change", () => {
      const files = [...input.files];
      input.value = ""; // the same file may be picked again after it is removed
      this.add(files);
    });
    // A paste with text is a paste of that text (a spreadsheet's copy carries a picture of its cells too); one
    // without is of the images it carries, a screenshot's or a copied picture's.
    pasteTarget.addEventListener("paste", (event) => {
      const files = [...(event.clipboardData?.files ?? [])];
      if (!files.length || event.clipboardData.types.includes("text/plain")) return;
      event.preventDefault();
      this.add(files);
    });
    const carriesFiles = (event) => event.dataTransfer?.types.includes("Files");
    dropZone.addEventListener("dragover", (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault(); // else the browser opens the file in place of the page
      event.dataTransfer.dropEffect = "copy";
      dropZone.dataset.dropping = "true";
    });
    dropZone.addEventListener("dragleave", (event) => {
      if (!dropZone.contains(event.relatedTarget)) delete dropZone.dataset.dropping;
    });
    dropZone.addEventListener("drop", (event) => {
      delete dropZone.dataset.dropping;
      if (!carriesFiles(event)) return;
      event.preventDefault();
      this.add([...event.dataTransfer.files]);
    });
  }

  /**
   * Adds the files that are images within the caps, after any added before; says why each other one is refused.
   *
   * @param {Iterable<File>} files
   * @returns {Promise<void>}
   */
  add(files) {
    this.adding = (this.adding ?? Promise.resolve()).then(() => this.addNow([...files]));
    return this.adding;
  }

  async addNow(files) {
    const refusals = [];
    for (const file of files) {
      const type = await sniffImageType(file);
      const refusal = this.refusal(file, type);
      if (refusal) {
        refusals.push(refusal);
        continue;
      }
      const typed = file.slice(0, file.size, type); // declared as what its bytes are
      this.images.push({ file: typed, name: file.name || "pasted image", preview: await dataUrl(typed) });
    }
    this.say(refusals.join(" "));
    this.render();
  }

  /** Why a file of this (sniffed) type cannot go with this message, or "" when it can. */
  refusal(file, type) {
    const name = `“${file.name || "The pasted file"}”`;
    if (!type) return `${name} is not a PNG, JPEG, WebP or GIF image, so it cannot be sent.`;
    if (file.size > MAX_IMAGE_BYTES) {
      return `${name} is ${megabytes(file.size)}: an image can be at most ${megabytes(MAX_IMAGE_BYTES)}.`;
    }
    if (this.images.length >= MAX_IMAGES) {
      return `${name} was not added: a message can carry at most ${MAX_IMAGES} images.`;
    }
    const total = this.images.reduce((sum, image) => sum + image.file.size, file.size);
    if (total > MAX_MESSAGE_IMAGE_BYTES) {
      return `${name} was not added: a message's images can add up to ${megabytes(MAX_MESSAGE_IMAGE_BYTES)}.`;
    }
    return "";
  }

  /** @returns {Promise<PendingImage[]>} the images, once every file added so far is in; they leave the tray */
  async take() {
    await this.adding;
    const taken = this.images;
    this.images = [];
    this.say("");
    this.render();
    return taken;
  }

  remove(index) {
    this.images.splice(index, 1);
    this.say("");
    this.render();
    const next = this.list.querySelectorAll("button")[Math.min(index, this.images.length - 1)];
    (next ?? this.button).focus();
  }

  say(message) {
    this.error.textContent = message;
    this.error.hidden = !message;
  }

  render() {
    this.list.hidden = !this.images.length;
    this.list.replaceChildren(...this.images.map((image, index) => {
      const item = document.createElement("li");
      const thumbnail = document.createElement("img");
      thumbnail.src = image.preview;
      thumbnail.alt = image.name;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove";
      remove.textContent = "×";
      remove.setAttribute("aria-label", `Remove ${image.name}`);
      remove.title = `Remove ${image.name}`;
      remove.addEventListener("click", () => this.remove(index));
      item.append(thumbnail, remove);
      return item;
    }));
  }
}

/**
 * The images a message carries, above its text (the relay sends them to the model before it too), loaded at once.
 *
 * @param {HTMLElement} message the message's element
 * @param {Array<{src: string, alt: string}>} images
 */
export function showImages(message, images) {
  if (!images.length) return;
  const list = document.createElement("ul");
  list.className = "images";
  list.setAttribute("aria-label", images.length === 1 ? "1 image" : `${images.length} images`);
  list.replaceChildren(...images.map(({ src, alt }) => {
    const image = document.createElement("img");
    image.src = src;
    image.alt = alt;
    // Loaded now, not lazily: a stored image's URL (GET …/messages) is good for 5 minutes, and one far up a long
    // conversation, fetched only when scrolled to, would by then be refused by S3 and show broken.
    const item = document.createElement("li");
    item.append(image);
    return item;
  }));
  message.querySelector(".content").before(list);
}

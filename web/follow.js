/**
 * Following a growing thread the way chat apps do: while the reader is at the bottom, the newest line stays in view
 * as an answer grows (and as its status line appears under it); once they scroll up, nothing moves under them, and
 * a "jump to latest" button takes them back down and following again.
 *
 * Hand-written: the libraries that do this (use-stick-to-bottom and the like) are React components. It is a few
 * listeners on the scrolling element and a ResizeObserver on its content: any change of the content's height (a
 * render, an image, a status line, a queued message) is followed, from wherever it came.
 *
 * @module follow
 */

// Up to this many pixels from the bottom counts as at the bottom: fractional layout sizes leave a pixel or two, and
// a reader who stops a hair above the end means the end.
const AT_BOTTOM_PX = 8;
const KEYS_THAT_SCROLL_UP = new Set(["ArrowUp", "PageUp", "Home"]);

export class ThreadFollower {
  /**
   * @param {HTMLElement} scroller the element that scrolls (overflow-y: auto)
   * @param {HTMLElement} content what grows inside it
   * @param {HTMLButtonElement} jumpButton shown while the reader is away from the bottom
   */
  constructor(scroller, content, jumpButton) {
    this.scroller = scroller;
    this.jumpButton = jumpButton;
    this.following = true;
    this.lastTop = scroller.scrollTop;
    scroller.addEventListener("scroll", () => this.scrolled(), { passive: true });
    // A wheel or a key says "up" before the scroll it causes: stop following at once, so a render that lands in
    // between does not pull the reader back down.
    scroller.addEventListener("wheel", (event) => { if (event.deltaY < 0) this.release(); }, { passive: true });
    scroller.addEventListener("keydown", (event) => { if (KEYS_THAT_SCROLL_UP.has(event.key)) this.release(); });
    jumpButton.addEventListener("click", () => this.toLatest());
    const resized = new ResizeObserver(() => this.keep());
    resized.observe(content);
    resized.observe(scroller);
  }

  /** Scrolls to the bottom and follows from there (a reload, another conversation, the jump button). */
  toLatest() {
    this.following = true;
    this.keep();
  }

  get distanceFromBottom() {
    return this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight;
  }

  keep() {
    if (this.following) this.scroller.scrollTop = this.scroller.scrollHeight;
    this.lastTop = this.scroller.scrollTop;
    this.showJump();
  }

  release() {
    if (this.scroller.scrollTop > 0) this.following = false; // nothing above: there is nowhere to go
    this.showJump();
  }

  scrolled() {
    const top = this.scroller.scrollTop;
    if (this.distanceFromBottom <= AT_BOTTOM_PX) this.following = true;
    else if (top < this.lastTop) this.following = false; // up by the scrollbar, a touch, or a key
    this.lastTop = top;
    this.showJump();
  }

  showJump() {
    this.jumpButton.hidden = this.following || this.distanceFromBottom <= AT_BOTTOM_PX;
  }
}

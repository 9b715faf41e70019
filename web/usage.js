/**
 * What the user has spent, at the foot of the conversation list: tokens and requests today and this month (UTC, as
 * the relay counts them; GET /usage), each against its budget when the relay sets one, with a meter, and when a
 * spent budget starts again. Refreshed after each turn.
 *
 * @module usage
 */
import { getUsage } from "./relay-client.js";

// A meter turns to its warning colour from here: most of the budget is gone.
const WARN_FROM = 0.8;

/** When a refused request may go again, in the user's own time: "at 01:00 your time" (or with the day, if not today). */
export function resetTime(at, now = new Date()) {
  const sameDay = at.toDateString() === now.toDateString();
  const time = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const day = at.toLocaleDateString([], { weekday: "short", day: "numeric", month: "short" });
  return sameDay ? `at ${time} your time` : `on ${day}, ${time} your time`;
}

/** The start of the next UTC day or month: when that period's budget starts again. */
function nextPeriod(period, now) {
  const [year, month, day] = [now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()];
  return new Date(period === "day" ? Date.UTC(year, month, day + 1) : Date.UTC(year, month + 1, 1));
}

export class UsageDisplay {
  /** @param {{section: HTMLElement, day: HTMLElement, month: HTMLElement, dayMeter: HTMLMeterElement,
   *   monthMeter: HTMLMeterElement}} elements */
  constructor(elements) {
    this.elements = elements;
  }

  /** @param {object} connection the relay's URL, token and auth mode, for relay-client.js */
  async refresh(connection) {
    this.show(await getUsage(connection));
  }

  show({ day, month, limits }, now = new Date()) {
    const { section, dayMeter, monthMeter } = this.elements;
    this.period(this.elements.day, dayMeter, "Today", day, limits.tokensPerDay, nextPeriod("day", now), now);
    this.period(this.elements.month, monthMeter, "This month", month, limits.tokensPerMonth,
      nextPeriod("month", now), now);
    section.hidden = false;
  }

  period(line, meter, name, spent, budget, resets, now) {
    const tokens = spent.inputTokens + spent.outputTokens;
    const requests = `${spent.requests.toLocaleString()} ${spent.requests === 1 ? "request" : "requests"}`;
    const used = budget ? `${tokens.toLocaleString()} of ${budget.toLocaleString()} tokens`
      : `${tokens.toLocaleString()} tokens`;
    const spentOut = Boolean(budget) && tokens >= budget;
    line.textContent = `${name}: ${used}, ${requests}`
      + (spentOut ? `. Budget used up: it starts again ${resetTime(resets, now)}.` : "");
    line.classList.toggle("spent", spentOut);
    meter.hidden = !budget;
    if (budget) {
      meter.high = WARN_FROM;
      meter.optimum = 0;
      meter.value = Math.min(1, tokens / budget);
    }
  }
}

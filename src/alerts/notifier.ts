/**
 * The pager path's push half: on a drain, post an alert to `alerts.webhook_url`.
 * An Alertmanager v2 URL (ending in `/api/v2/alerts`) gets an Alertmanager
 * alert list; any other URL gets a plain JSON object. Delivery runs in the
 * background with bounded retries and never delays the drain itself (the
 * drain is applied before `page` is called, and `page` does not wait).
 *
 * The Prometheus rule NginxCanaryDrained (prometheus/nginx-canary.rules.yml, on
 * `nginx_canary_drained`, same labels so Alertmanager merges the two) is the other
 * half and keeps paging while a service stays drained (README "Alerts and dashboards").
 */
import { request, type Dispatcher } from 'undici';
import type { Logger } from '../log.js';
import type { Page } from '../rollout/types.js';

/** Sends pages. The test double records them. */
export interface Notifier {
  /** Queues a page; returns at once. */
  page(page: Page): void;
  /** Resolves when every queued delivery has finished or given up. */
  flush(): Promise<void>;
}

/** A notifier that sends nothing (no webhook configured). */
export const nopNotifier: Notifier = {
  page: () => undefined,
  flush: () => Promise.resolve(),
};

/** Options of {@link WebhookNotifier}. */
export interface WebhookOptions {
  /** alerts.webhook_url: an http(s) URL (checked by the config loader, not here). */
  url: string;
  /** Delivery outcomes are logged here (info, warn per failed attempt, error when given up). */
  log: Logger;
  /** Attempts per page (default 4: now, +1 s, +2 s, +4 s; a chosen default, not a runbook number). */
  attempts?: number;
  /** First backoff in ms, doubled each retry (default 1000; chosen). */
  backoffMs?: number;
  /** Header and body timeout of one attempt, ms (default 5000; chosen). */
  timeoutMs?: number;
  /** undici dispatcher for the POST (default: the global one); tests pass a MockAgent. */
  dispatcher?: Dispatcher;
}

/**
 * Posts pages to a webhook; deduplicates the same (service, event time) page
 * among the last 1000 pages (a chosen bound on the memory this takes).
 */
export class WebhookNotifier implements Notifier {
  readonly #opts: Required<Omit<WebhookOptions, 'dispatcher'>> & { dispatcher: Dispatcher | undefined };
  readonly #inflight = new Set<Promise<void>>();
  readonly #sent = new Set<string>();

  /** Takes the options as given (no validation: `attempts` ≤ 0 sends nothing); never throws. */
  constructor(opts: WebhookOptions) {
    this.#opts = {
      url: opts.url,
      log: opts.log,
      attempts: opts.attempts ?? 4,
      backoffMs: opts.backoffMs ?? 1000,
      timeoutMs: opts.timeoutMs ?? 5000,
      dispatcher: opts.dispatcher,
    };
  }

  /**
   * Queues one delivery in the background and returns at once; never throws.
   * A page with the same service and `event.at` (epoch ms) as a recent one is
   * dropped. Failures are logged, never thrown.
   */
  page(page: Page): void {
    const key = `${page.service}@${page.event.at}`;
    if (this.#sent.has(key)) return;
    this.#sent.add(key);
    if (this.#sent.size > 1000) this.#sent.delete(this.#sent.values().next().value as string);
    const p = this.#deliver(page).finally(() => this.#inflight.delete(p));
    this.#inflight.add(p);
  }

  /** Resolves when every queued delivery has been delivered or given up; never rejects. */
  async flush(): Promise<void> {
    await Promise.all([...this.#inflight]);
  }

  /**
   * The body posted for a page: an Alertmanager v2 alert list (`startsAt`
   * from `event.at`, ISO 8601) when `url` ends in `/api/v2/alerts`, else a
   * plain object. Pure.
   *
   * @throws RangeError (from `Date.toISOString`) when `page.event.at` is not a valid epoch ms.
   */
  static body(url: string, page: Page): unknown {
    if (url.replace(/\/+$/, '').endsWith('/api/v2/alerts')) {
      return [
        {
          labels: { alertname: 'NginxCanaryDrained', service: page.service, reason: page.reason, severity: 'page' },
          annotations: { summary: page.summary, description: page.event.reason },
          startsAt: new Date(page.event.at).toISOString(),
        },
      ];
    }
    return {
      alert: 'nginx_canary_drained',
      service: page.service,
      reason: page.reason,
      summary: page.summary,
      event: page.event,
    };
  }

  async #deliver(page: Page): Promise<void> {
    const { url, attempts, backoffMs, timeoutMs, log, dispatcher } = this.#opts;
    const body = JSON.stringify(WebhookNotifier.body(url, page));
    for (let i = 0; i < attempts; i++) {
      try {
        const res = await request(url, {
          method: 'POST',
          body,
          headers: { 'content-type': 'application/json' },
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
          ...(dispatcher ? { dispatcher } : {}),
        });
        await res.body.dump();
        if (res.statusCode < 300) {
          log.info({ service: page.service, status: res.statusCode }, 'page delivered');
          return;
        }
        log.warn({ service: page.service, status: res.statusCode, attempt: i + 1 }, 'page rejected by webhook');
      } catch (err) {
        log.warn({ service: page.service, err, attempt: i + 1 }, 'page delivery failed');
      }
      // Not unref'd: a pending page keeps the process alive until delivered or given up (bounded by attempts).
      if (i + 1 < attempts) await new Promise((r) => setTimeout(r, backoffMs * 2 ** i));
    }
    log.error({ service: page.service }, 'page not delivered after all attempts');
  }
}

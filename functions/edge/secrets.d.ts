// Secrets of the Worker (see wrangler.toml): not in [vars], so `wrangler types` does not list them.
declare namespace Cloudflare {
  interface Env {
    /** HMAC-SHA256 key shared with the origin (X-Latentsight-Signature). */
    ORIGIN_HMAC_SECRET?: string;
  }
}

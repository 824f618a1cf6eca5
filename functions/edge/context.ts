/**
 * What every route sees besides the request: the Worker's bindings and the app's dependencies,
 * which `createApp` builds once per isolate (and tests replace).
 */
import type { BreakerRegistry } from './breaker.ts';
import type { EdgeConfig } from './config.ts';
import type { OriginDeps } from './origin.ts';
import type { ModelRegistry } from './registry.ts';

export interface AppDeps {
  /** The served models, loaded once per isolate (`env` gives TASK_MODELS, the preferred task models). */
  registry: (env: Env) => Promise<ModelRegistry>;
  /** Settings that override the Worker's vars (tests). */
  config: Partial<EdgeConfig>;
  origin: OriginDeps;
  /** One circuit breaker per origin URL, shared by every request of the isolate. */
  breakers: BreakerRegistry;
}

/** Hono's environment type for the edge app. */
export interface AppEnv {
  Bindings: Env;
  Variables: { requestId: string; deps: AppDeps };
}

/**
 * Structured logs: one JSON object per line (stdout in Node, the Worker's log stream in workerd),
 * shared by the edge and the origin so that both speak the same fields (`request_id` above all).
 * Never tensor or image data; fields whose names look like secrets are redacted, and byte arrays are
 * replaced by their length, as a second line of defence. No platform API: `console.log` by default.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET = /secret|signature|authorization|password|token|api_?key/i;

export const LOG_LEVELS = Object.keys(RANK) as LogLevel[];

/**
 * @example
 * const log = createLogger({ level: 'info' });
 * log.info('request', { request_id: 'abc', status: 200, ms: 3.1 });
 * // {"ts":"2026-11-26T02:30:00.000Z","level":"info","msg":"request","request_id":"abc","status":200,"ms":3.1}
 */
export function createLogger(options: { level: LogLevel; write?: (line: string, level: LogLevel) => void; base?: Fields }): Logger {
  const write = options.write ?? consoleWrite;
  const min = RANK[options.level];
  const emit = (level: LogLevel, msg: string, fields?: Fields) => {
    if (RANK[level] < min) return;
    write(JSON.stringify({ ts: new Date().toISOString(), level, msg, ...options.base, ...clean(fields) }), level);
  };
  return {
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
  };
}

/** Errors and warnings to the console's error and warn streams, so log tooling sees their level. */
function consoleWrite(line: string, level: LogLevel): void {
  if (level === 'error') console.error(line);
  else if (level === 'warn') console.warn(line);
  else console.log(line);
}

function clean(fields: Fields | undefined): Fields | undefined {
  if (!fields) return undefined;
  const out: Fields = {};
  for (const [k, v] of Object.entries(fields)) {
    if (SECRET.test(k)) out[k] = '[redacted]';
    else if (v instanceof Error) out[k] = { name: v.name, message: v.message, ...('code' in v && { code: v.code }), ...(v.stack && { stack: v.stack }) };
    else if (ArrayBuffer.isView(v)) out[k] = `[${v.constructor.name} of ${v.byteLength} bytes]`;
    else out[k] = v;
  }
  return out;
}

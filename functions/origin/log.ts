/**
 * Structured logs: one JSON object per line on stdout. Never tensor data; fields whose names look
 * like secrets are redacted as a second line of defence.
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
const SECRET = /secret|signature|authorization|password|token/i;

export const LOG_LEVELS = Object.keys(RANK) as LogLevel[];

/**
 * @example
 * const log = createLogger({ level: 'info' });
 * log.info('request', { request_id: 'abc', status: 200, ms: 3.1 });
 * // {"ts":"2026-11-26T02:30:00.000Z","level":"info","msg":"request","request_id":"abc","status":200,"ms":3.1}
 */
export function createLogger(options: { level: LogLevel; write?: (line: string) => void; base?: Fields }): Logger {
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const min = RANK[options.level];
  const emit = (level: LogLevel, msg: string, fields?: Fields) => {
    if (RANK[level] < min) return;
    write(JSON.stringify({ ts: new Date().toISOString(), level, msg, ...options.base, ...clean(fields) }));
  };
  return {
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
  };
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

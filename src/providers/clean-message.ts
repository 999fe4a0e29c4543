import { isIPv6 } from 'node:net';

// An upstream's 400 message is passed to the client because it says what to fix ("maximum context
// length is 8192 tokens"), but providers and the proxies in front of them also put their URLs,
// internal host names, addresses, credentials and file paths into it. The rules below remove
// those and leave the words. They err on the side of removing: a model name or a field path
// survives, a dotted name that could be a host does not.

const MAX_LENGTH = 1000;
const HOST = '[host]';
const REDACTED = '[redacted]';

// Any scheme (postgres://user:pass@host/db included); a trailing full stop or bracket stays outside.
const URL_ANY = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]*[^\s"'<>`.,;:!?)\]}]/gi;
// Credentials before an @ without a scheme (`svc:pw@db`), and the local part of an e-mail address.
const USERINFO = /(?<![^\s"'<>@/:()[\]])[^\s"'<>@/:()[\]]+:[^\s"'<>@/()[\]]+@/g;
const EMAIL_USER = /(?<![\w.+%-])[\w.+%-]+@(?=[a-z0-9])/gi;
const JWT = /\beyJ[\w-]*\.[\w-]*\.[\w-]*/g;
const BEARER = /\bBearer\s+[^\s"',;]+/gi;
// "Basic auth failed" stays; base64 of `user:password` after Basic does not.
const BASIC = /\bBasic\s+([A-Za-z0-9+/]{4,}={0,2})/g;
// password=…, "api_key": "…", Secret: …, x-api-key=…, in any case, with `:` or `=`.
const KEY_VALUE = /\b((?:[a-z0-9_-]*?(?:key|secret|passw(?:or)?d|pwd|token|credentials?))|auth(?:orization)?|signature)(["']?\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s"',;&)\]}]+)/gi;
const TOKEN_SHAPES = [
  /\b(?:sk|pk|rk|ak|sess)-[A-Za-z0-9_-]{8,}/gi, // OpenAI and Anthropic keys (sk-proj-…, sk-ant-…), session keys
  /\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|ABIA|ACCA)[A-Z0-9]{12,}/g, // AWS access key ids
  /\borg-(?:(?=[A-Za-z]*[0-9])[A-Za-z0-9]{8,}|[A-Za-z0-9]{16,})/g, // OpenAI organisation ids, not "org-level"
  /\bproj_[A-Za-z0-9]{8,}/g,
  /\bgh[pousr]_[A-Za-z0-9]{20,}/g,
  /\bglpat-[\w-]{20,}/g,
  /\bxox[abprs]-[\w-]{10,}/g,
  /\bAIza[\w-]{30,}/g,
];
// A long run of letters and digits (an AWS secret, a hex digest, a base64 key), checked in a
// replacer rather than with look-aheads so that it stays linear.
const LONG_RUN = /(?<![\w+/=-])[A-Za-z0-9+/=_-]{32,}/g;
const BRACKETED_V6 = /\[([0-9a-f:.]+)(%[\w.-]+)?\](?::\d{1,5})?/gi;
const V6_CANDIDATE = /(?<![\w:.])[0-9a-f]*:[0-9a-f:.]*:[0-9a-f:.]*(?:%[\w.-]+)?/gi;
const V4 = /(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?(?!\w|\.\d)/g;
const DNS_NAME = /(?<![\w.@-])(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+([a-z][a-z0-9-]*[a-z0-9])(?::\d{1,5})?(?![\w-]|\.[a-z0-9])/gi;
const LOCALHOST = /\blocalhost(?::\d{1,5})?\b/gi;
// `redis:6379`, `db-primary:5432`: a single-label host is only recognisable by its port.
const NAME_PORT = /(?<![\w.:/-])[a-z][a-z0-9-]*:\d{2,5}(?![\w.:])/gi;
const UNIX_PATH = /(?<![\w.:/~-])(?:~\/[\w.@+-]+|(?:\/[\w.@+-]+){2,})(?:\/[\w.@+-]*)*/g;
const WINDOWS_PATH = /\b[A-Za-z]:\\[^\s"'<>|]*/g;
const UNC_PATH = /\\\\[^\s"'<>|]+/g;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f]/g;

/**
 * Top-level labels that make a two-label name a host: internal suffixes and common public ones.
 * A name of three or more labels is a host whatever its suffix; `file.json` and
 * `messages.content` (two labels, no such suffix) are left alone.
 */
const HOST_SUFFIXES = new Set([
  'internal', 'local', 'localdomain', 'lan', 'corp', 'home', 'intranet', 'intra', 'private', 'priv', 'cluster', 'svc', 'arpa',
  'test', 'example', 'invalid', 'localhost', 'prod', 'staging', 'consul',
  'com', 'net', 'org', 'edu', 'gov', 'mil', 'int', 'io', 'ai', 'co', 'app', 'dev', 'cloud', 'xyz', 'info', 'biz', 'tech', 'site',
  'online', 'run', 'sh', 'gg', 'me', 'tv', 'us', 'uk', 'eu', 'de', 'fr', 'nl', 'ch', 'se', 'no', 'fi', 'dk', 'es', 'it', 'pl', 'cz',
  'at', 'be', 'ie', 'pt', 'ru', 'ua', 'cn', 'hk', 'tw', 'jp', 'kr', 'sg', 'in', 'id', 'vn', 'th', 'my', 'au', 'nz', 'ca', 'mx',
  'br', 'ar', 'cl', 'za', 'il', 'tr', 'ae', 'sa',
]);

/** Strips what a client must never see from an upstream message: URLs, hosts, addresses, credentials, paths. */
export function cleanMessage(message: string, secrets: readonly string[] = []): string {
  let m = message.length > 2 * MAX_LENGTH ? message.slice(0, 2 * MAX_LENGTH) : message;
  for (const s of secrets) if (s.length >= 4) m = m.split(s).join(REDACTED);
  m = m
    .replace(CONTROL, ' ')
    .replace(URL_ANY, '[url]')
    .replace(USERINFO, `${REDACTED}@`)
    .replace(EMAIL_USER, `${REDACTED}@`)
    .replace(JWT, REDACTED)
    .replace(BEARER, `Bearer ${REDACTED}`)
    .replace(BASIC, (all, b64: string) => (Buffer.from(b64, 'base64').includes(58) ? `Basic ${REDACTED}` : all))
    .replace(KEY_VALUE, `$1$2${REDACTED}`);
  for (const shape of TOKEN_SHAPES) m = m.replace(shape, REDACTED);
  m = m
    .replace(LONG_RUN, (run) => (/[0-9]/.test(run) && /[A-Za-z]/.test(run) ? REDACTED : run))
    .replace(BRACKETED_V6, (all, addr: string) => (isIPv6(addr) ? HOST : all))
    .replace(V6_CANDIDATE, ipv6)
    .replace(V4, HOST)
    .replace(DNS_NAME, (name: string, tld: string) => (HOST_SUFFIXES.has(tld.toLowerCase()) || labels(name) >= 3 ? HOST : name))
    .replace(LOCALHOST, HOST)
    .replace(NAME_PORT, HOST)
    .replace(UNIX_PATH, '[path]')
    .replace(WINDOWS_PATH, '[path]')
    .replace(UNC_PATH, '[path]');
  return m.length > MAX_LENGTH ? m.slice(0, MAX_LENGTH) + '…' : m;
}

/** An IPv6 candidate (two colons or more) becomes [host] if it is one, with its zone; punctuation after it stays. */
function ipv6(candidate: string): string {
  const zone = candidate.indexOf('%');
  let addr = zone < 0 ? candidate : candidate.slice(0, zone);
  let tail = '';
  while (addr.length > 0 && !isIPv6(addr) && (addr.endsWith('.') || addr.endsWith(':'))) {
    tail = addr.slice(-1) + tail;
    addr = addr.slice(0, -1);
  }
  return isIPv6(addr) ? HOST + tail : candidate;
}

function labels(name: string): number {
  const host = name.split(':')[0]!;
  let n = 1;
  for (let i = 0; i < host.length; i++) if (host.charCodeAt(i) === 46) n++;
  return n;
}

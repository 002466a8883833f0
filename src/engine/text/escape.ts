/**
 * Text from outside (request fields, file contents, snapshot strings, model names) made safe to print
 * on a terminal or into a log line: control characters (C0 and C1, DEL, and so ANSI escape sequences,
 * CR and LF that would forge a log line) become visible escapes; everything else, tabs and every other
 * Unicode character included, is kept. `maxChars` cuts overly long values with an ellipsis.
 */
export function escapeControl(text: string, maxChars = Infinity): string {
  const cut = text.length > maxChars ? `${text.slice(0, maxChars)}…` : text;
  // eslint-disable-next-line no-control-regex
  return cut.replace(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => {
    const code = c.charCodeAt(0);
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

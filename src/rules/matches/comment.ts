/** -m comment: libxt_comment.c (XT_MAX_COMMENT_LEN 256 including the NUL); always matches. */
import type { CompiledMatch, MatchModule } from '../types';
import { quoteArg } from './util';

export const MAX_COMMENT_LEN = 255;

export interface CommentState {
  text: string | null;
}

const ALWAYS: CompiledMatch = { match: () => true };

export const commentMatch: MatchModule<CommentState> = {
  name: 'comment',
  options: [{ name: 'comment', invertible: false, args: 1 }],
  create: () => ({ text: null }),
  parse(s, _opt, args, _inv, optTok, env) {
    if (s.text !== null) return env.error(optTok, '--comment given twice');
    const t = args[0].text;
    // xtopt_parse_string cuts a longer comment to the field's 255 bytes without a word
    const b = Buffer.from(t);
    s.text = b.length > MAX_COMMENT_LEN ? b.subarray(0, MAX_COMMENT_LEN).toString() : t;
  },
  finalize(s, _rule, at, env) {
    if (s.text === null) env.error(at, 'comment match needs --comment');
  },
  familyOf: () => 0,
  save(s) {
    return ['--comment', quoteArg(s.text ?? '')];
  },
  compile: () => ALWAYS,
};

// The home page needs no data: it only shows who is signed in when a token is present.
// (A file, not an inline script: the pages' Content-Security-Policy allows scripts from 'self' only.)
import { boot } from "/static/common.js";
boot(null, { optional: true });

/** Search (PROTOCOL §8). */
import { t } from "elysia";
import { named, PageOf, Shape, type FeatureModel, type Static } from "../lib/model";
import { Message } from "../messages/model";

/** An item of `GET /api/search/messages`. */
export const SearchHit = named(
  "SearchHit",
  Shape({ message: Message, snippet: t.String({ description: "HTML-escaped text around the first match, matches in <mark>…</mark>; at most ~200 characters" }) }),
);
export type SearchHit = Static<typeof SearchHit>;

export const SearchHitPage = named("SearchHitPage", PageOf(SearchHit));

export const model = {} satisfies FeatureModel;

/**
 * How many events effect-pgq reads per round trip when a caller does not say.
 *
 * @since 0.1.0
 */

/**
 * 1000 events per page: per cursor `fetch`, and in the first page of a batch.
 *
 * A page is both the unit of memory (at most one page, plus one row, is held)
 * and of round trips (one per page). Past a few hundred events a page the
 * round trip is a small share of its cost: streaming 200,000 events of ~200
 * bytes from a local server took about the same time with pages of 500, 1000,
 * 2000 and 4000 (within ~10%, run to run), while memory grows with the page.
 * 1000 keeps a page of kilobyte payloads near a megabyte.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_FETCH_SIZE = 1000

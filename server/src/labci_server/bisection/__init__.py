"""Automatic bisection: the commit that moved a metric at a change point of the default
branch, found by measuring commits between the two measured ones (issue 11, item 8).

    judged push on the default branch ─start─▶ bisection (listing)
        ─advance: forge lists the first-parent commits─▶ searching
        ─advance: midpoint measured? classify, narrow; else a `baseline` run at it─▶ …
        ─▶ found (effect, comment on the commit or its pull request) | exhausted | failed
           | budget (paused until the repository's daily budget has room)

`search` is the pure binary search, `start` the hook in result ingestion, `probes` what a
commit's measurement says and how one is asked for, `advance` the worker's steps, `report`
the effect and the comment.
"""

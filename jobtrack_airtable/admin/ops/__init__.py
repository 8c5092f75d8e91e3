"""Operations on a tracking base: health checks (``check``) and the HTML report (``report``).

Library functions first; the CLI commands (:mod:`jobtrack_airtable.cli._check`,
:mod:`jobtrack_airtable.cli._report`) are thin shells over them.  Nothing here is imported by
``import jobtrack_airtable``; the heavy optional dependencies (apprise for notifications,
plotly for charts; ``pip install 'jobtrack-airtable[ops]'``) are imported only by the
functions that need them.

* :mod:`.activity` -- the rows of both tables in a time window (one read per table);
* :mod:`.config`, :mod:`.state`, :mod:`.health`, :mod:`.notify` -- ``check``;
* :mod:`.report_data`, :mod:`.report_html` -- ``report``.
"""

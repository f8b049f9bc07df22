"""The book's measurements, run by ``make bench`` (not part of ``make test``).

Run each module from the repository root as ``python -m benchmarks.<module>``:

- :mod:`benchmarks.harness`: what the throughput benchmarks share: the spec of one comparison,
  the alternating runs, the table and its summary, the command line;
- :mod:`benchmarks.vae_throughput`, :mod:`benchmarks.dcgan_throughput`,
  :mod:`benchmarks.lstm_throughput`: one model each, the conventional ``DataLoader`` loop
  against the book's recipe (``genai_course.train.recipes``);
- :mod:`benchmarks.notebooks`: every notebook's time, peak memory and recorded results, under
  the reference run of ``reference-run.env``;
- :mod:`benchmarks.scaling`: one process against several (the page "Scaling out");
- :mod:`benchmarks.results`: all of the above, written to ``book/results.json`` and rendered as
  the book's Results page (``make bench``).
"""

"""``ccactors bench``: the transaction path measured against raw primitives in the same run.

Modules:

* :mod:`bench.procinfo` - CPU seconds, RSS/PSS, CPU placement and the machine (psutil);
* :mod:`bench.driver` - closed-loop load generation and latency statistics;
* :mod:`bench.ceilings` - the raw primitives and bare "invokes" our figures are divided by;
* :mod:`bench.workloads` - the runtimes (one entry each) and the transaction workloads;
* :mod:`bench.runner` - the sections of a run (primitives, transactions, launch, scaling,
  targets) and the medians over repeats;
* :mod:`bench.report` - the table, the markdown results file, JSON and the plot;
* :mod:`bench.cli` - the options of ``ccactors bench``.
"""

SCHEMA = "ccactors-bench/1"

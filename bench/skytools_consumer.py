#!/usr/bin/python3
"""Skytools' Python consumer (pgq.Consumer) on the same workload as the
effect-pgq consumer benchmark: a no-op process_event over every ready batch.

    skytools_consumer.py <libpq connstr> <queue> <consumer>

Prints one JSON object: {"events": N, "seconds": S} (time spent in work()).
"""
import json
import os
import sys
import tempfile
import time

import pgq


class NoopConsumer(pgq.Consumer):
    def process_event(self, db, ev):
        ev.tag_done()


def main():
    connstr, queue, consumer = sys.argv[1:4]
    workdir = tempfile.mkdtemp(prefix="skytools-bench-")
    config = os.path.join(workdir, "consumer.ini")
    with open(config, "w") as f:
        f.write(
            "[noop_consumer]\n"
            f"job_name = {consumer}\n"
            f"src_db = {connstr}\n"
            f"pgq_queue_name = {queue}\n"
            f"pgq_consumer_id = {consumer}\n"
            f"logfile = {os.path.join(workdir, 'consumer.log')}\n"
            f"pidfile = {os.path.join(workdir, 'consumer.pid')}\n"
        )
    script = NoopConsumer("noop_consumer", "src_db", [config, "-q"])
    counted = 0
    original = script.stat_end
    def count(n):
        nonlocal counted
        counted += n
        original(n)
    script.stat_end = count
    start = time.perf_counter()
    while script.work():
        pass
    seconds = time.perf_counter() - start
    script.close_database("src_db")
    print(json.dumps({"events": counted, "seconds": seconds}))


if __name__ == "__main__":
    main()

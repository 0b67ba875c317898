#!/usr/bin/python3
"""Skytools' Python CoopConsumer, one subconsumer of a cooperative consumer:
records every event of every batch it gets into a table (in the batch's
transaction), pausing a little per batch so that its peers get batches too,
until no batch is ready.

    skytools_coop_consumer.py <connstr> <queue> <consumer> <subconsumer> <table>

Prints one JSON object: {"batches": N, "events": M}.
"""
import json
import os
import sys
import tempfile
import time

import pgq


class Recorder(pgq.CoopConsumer):
    table = ""
    batches = 0
    events = 0

    def process_batch(self, db, batch_id, event_list):
        curs = db.cursor()
        for ev in event_list:
            curs.execute(f"insert into {self.table} (ev_id, data, worker) values (%s, %s, 'python')", [ev.id, ev.data])
            self.events += 1
        self.batches += 1
        time.sleep(0.05)


def main():
    connstr, queue, consumer, subconsumer, table = sys.argv[1:6]
    workdir = tempfile.mkdtemp(prefix="skytools-coop-")
    config = os.path.join(workdir, "consumer.ini")
    with open(config, "w") as f:
        f.write(
            "[recorder]\n"
            f"job_name = {consumer}_{subconsumer}\n"
            f"src_db = {connstr}\n"
            f"pgq_queue_name = {queue}\n"
            f"pgq_consumer_id = {consumer}\n"
            f"subconsumer_name = {subconsumer}\n"
            "subconsumer_timeout = 1 hour\n"
            f"logfile = {os.path.join(workdir, 'consumer.log')}\n"
            f"pidfile = {os.path.join(workdir, 'consumer.pid')}\n"
        )
    script = Recorder("recorder", "src_db", [config, "-q"])
    script.table = table
    script.register_consumer()
    while script.work():
        pass
    script.close_database("src_db")
    print(json.dumps({"batches": script.batches, "events": script.events}))


if __name__ == "__main__":
    main()

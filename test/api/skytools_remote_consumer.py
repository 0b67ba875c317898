#!/usr/bin/python3
"""Skytools' Python RemoteConsumer against a queue database and a remote one
whose pgq_ext API effect-pgq installed: applies every ready batch's events
to a remote table, then exits.

    skytools_remote_consumer.py <queue connstr> <remote connstr> <queue> <consumer> <table>

Prints one JSON object: {"batches": N, "events": M}.
"""
import json
import os
import sys
import tempfile

import pgq


class Applier(pgq.RemoteConsumer):
    table = ""
    batches = 0
    events = 0

    def process_remote_batch(self, db, batch_id, event_list, dst_db):
        curs = dst_db.cursor()
        for ev in event_list:
            curs.execute(f"insert into {self.table} (ev_id, data) values (%s, %s)", [ev.id, ev.data])
            self.events += 1
        self.batches += 1


def main():
    queue_db, remote_db, queue, consumer, table = sys.argv[1:6]
    workdir = tempfile.mkdtemp(prefix="skytools-remote-")
    config = os.path.join(workdir, "consumer.ini")
    with open(config, "w") as f:
        f.write(
            "[applier]\n"
            f"job_name = {consumer}\n"
            f"src_db = {queue_db}\n"
            f"dst_db = {remote_db}\n"
            f"pgq_queue_name = {queue}\n"
            f"pgq_consumer_id = {consumer}\n"
            f"logfile = {os.path.join(workdir, 'consumer.log')}\n"
            f"pidfile = {os.path.join(workdir, 'consumer.pid')}\n"
        )
    script = Applier("applier", "src_db", "dst_db", [config, "-q"])
    script.table = table
    while script.work():
        pass
    script.close_database("src_db")
    script.close_database("dst_db")
    print(json.dumps({"batches": script.batches, "events": script.events}))


if __name__ == "__main__":
    main()

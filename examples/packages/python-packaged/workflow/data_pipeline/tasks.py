"""The `data_pipeline` package: collect, process, report.

Tasks are bare `@cloaca.task` decorators: the daemon's worker imports this module with the
manifest's workflow (`data_pipeline`) open, so they define its tasks. `delay_s` in a run's input
makes `collect` take that long (for the test suite: a run in flight while the package is
replaced). The trigger starts a run for each file that appears in the directory
`PIPELINE_INBOX` names.
"""

import os
import time

import cloaca

RELEASE = "one"


@cloaca.task(id="collect")
def collect(context):
    time.sleep(float(context.get("delay_s", 0)))
    context.set("records", [3, 1, 2])
    context.set("release", RELEASE)
    return context


@cloaca.task(id="process", dependencies=["collect"])
def process(context):
    context.set("sorted", sorted(context.get("records")))
    return context


@cloaca.task(id="report", dependencies=["process"])
def report(context):
    context.set("report", {"count": len(context.get("sorted")), "release": RELEASE, "file": context.get("file")})
    return context


@cloaca.trigger(name="inbox_watcher", poll_interval="200ms")
def inbox_watcher():
    inbox = os.environ.get("PIPELINE_INBOX")
    if not inbox or not os.path.isdir(inbox):
        return cloaca.TriggerResult.skip()
    for name in sorted(os.listdir(inbox)):
        os.remove(os.path.join(inbox, name))
        return cloaca.TriggerResult.fire(cloaca.Context({"file": name}))
    return cloaca.TriggerResult.skip()

DROP TABLE trigger_executions;
DROP TABLE trigger_schedules;

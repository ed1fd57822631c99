DROP TABLE task_attempts;

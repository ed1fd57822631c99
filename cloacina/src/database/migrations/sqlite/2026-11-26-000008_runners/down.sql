DROP TABLE runners;

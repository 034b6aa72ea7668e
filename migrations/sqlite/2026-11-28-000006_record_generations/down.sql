DROP TABLE glance_record_generations;

-- activity_at becomes a microsecond key (lib/time.ts activityKey).
UPDATE `conversations` SET `activity_at` = `activity_at` * 1000 WHERE `activity_at` < 100000000000000;

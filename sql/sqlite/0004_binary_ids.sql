-- Schema 4: record ids as 16 bytes.
--
-- An id in canonical form (a lowercase, hyphenated UUID: every id Waymark
-- mints or accepts from a user) is stored as its 16 bytes instead of its 36
-- characters, in every row and index that holds it (src/store/id.rs). Any
-- other text stays text, unchanged. The columns keep their declared type:
-- TEXT affinity stores a blob as a blob, so no table is rebuilt.
--
-- The test below is the one src/store/id.rs applies: 36 characters, no
-- uppercase letter, hyphens at 9, 14, 19 and 24, and 32 hex digits besides.

UPDATE work_items SET id = unhex(replace(id, '-', ''))
 WHERE typeof(id) = 'text' AND length(id) = 36 AND lower(id) = id
   AND substr(id, 9, 1) || substr(id, 14, 1) || substr(id, 19, 1) || substr(id, 24, 1) = '----'
   AND length(replace(id, '-', '')) = 32 AND unhex(replace(id, '-', '')) IS NOT NULL;

UPDATE work_items SET parent_id = unhex(replace(parent_id, '-', ''))
 WHERE typeof(parent_id) = 'text' AND length(parent_id) = 36 AND lower(parent_id) = parent_id
   AND substr(parent_id, 9, 1) || substr(parent_id, 14, 1) || substr(parent_id, 19, 1) || substr(parent_id, 24, 1) = '----'
   AND length(replace(parent_id, '-', '')) = 32 AND unhex(replace(parent_id, '-', '')) IS NOT NULL;

UPDATE dependencies SET id = unhex(replace(id, '-', ''))
 WHERE typeof(id) = 'text' AND length(id) = 36 AND lower(id) = id
   AND substr(id, 9, 1) || substr(id, 14, 1) || substr(id, 19, 1) || substr(id, 24, 1) = '----'
   AND length(replace(id, '-', '')) = 32 AND unhex(replace(id, '-', '')) IS NOT NULL;

UPDATE dependencies SET source_id = unhex(replace(source_id, '-', ''))
 WHERE typeof(source_id) = 'text' AND length(source_id) = 36 AND lower(source_id) = source_id
   AND substr(source_id, 9, 1) || substr(source_id, 14, 1) || substr(source_id, 19, 1) || substr(source_id, 24, 1) = '----'
   AND length(replace(source_id, '-', '')) = 32 AND unhex(replace(source_id, '-', '')) IS NOT NULL;

UPDATE dependencies SET target_id = unhex(replace(target_id, '-', ''))
 WHERE typeof(target_id) = 'text' AND length(target_id) = 36 AND lower(target_id) = target_id
   AND substr(target_id, 9, 1) || substr(target_id, 14, 1) || substr(target_id, 19, 1) || substr(target_id, 24, 1) = '----'
   AND length(replace(target_id, '-', '')) = 32 AND unhex(replace(target_id, '-', '')) IS NOT NULL;

UPDATE vendors SET id = unhex(replace(id, '-', ''))
 WHERE typeof(id) = 'text' AND length(id) = 36 AND lower(id) = id
   AND substr(id, 9, 1) || substr(id, 14, 1) || substr(id, 19, 1) || substr(id, 24, 1) = '----'
   AND length(replace(id, '-', '')) = 32 AND unhex(replace(id, '-', '')) IS NOT NULL;

UPDATE deployments SET id = unhex(replace(id, '-', ''))
 WHERE typeof(id) = 'text' AND length(id) = 36 AND lower(id) = id
   AND substr(id, 9, 1) || substr(id, 14, 1) || substr(id, 19, 1) || substr(id, 24, 1) = '----'
   AND length(replace(id, '-', '')) = 32 AND unhex(replace(id, '-', '')) IS NOT NULL;

UPDATE deployment_links SET id = unhex(replace(id, '-', ''))
 WHERE typeof(id) = 'text' AND length(id) = 36 AND lower(id) = id
   AND substr(id, 9, 1) || substr(id, 14, 1) || substr(id, 19, 1) || substr(id, 24, 1) = '----'
   AND length(replace(id, '-', '')) = 32 AND unhex(replace(id, '-', '')) IS NOT NULL;

UPDATE deployment_links SET deployment_id = unhex(replace(deployment_id, '-', ''))
 WHERE typeof(deployment_id) = 'text' AND length(deployment_id) = 36 AND lower(deployment_id) = deployment_id
   AND substr(deployment_id, 9, 1) || substr(deployment_id, 14, 1) || substr(deployment_id, 19, 1) || substr(deployment_id, 24, 1) = '----'
   AND length(replace(deployment_id, '-', '')) = 32 AND unhex(replace(deployment_id, '-', '')) IS NOT NULL;

UPDATE deployment_links SET target_id = unhex(replace(target_id, '-', ''))
 WHERE typeof(target_id) = 'text' AND length(target_id) = 36 AND lower(target_id) = target_id
   AND substr(target_id, 9, 1) || substr(target_id, 14, 1) || substr(target_id, 19, 1) || substr(target_id, 24, 1) = '----'
   AND length(replace(target_id, '-', '')) = 32 AND unhex(replace(target_id, '-', '')) IS NOT NULL;

UPDATE enhancements SET id = unhex(replace(id, '-', ''))
 WHERE typeof(id) = 'text' AND length(id) = 36 AND lower(id) = id
   AND substr(id, 9, 1) || substr(id, 14, 1) || substr(id, 19, 1) || substr(id, 24, 1) = '----'
   AND length(replace(id, '-', '')) = 32 AND unhex(replace(id, '-', '')) IS NOT NULL;

UPDATE configuration SET id = unhex(replace(id, '-', ''))
 WHERE typeof(id) = 'text' AND length(id) = 36 AND lower(id) = id
   AND substr(id, 9, 1) || substr(id, 14, 1) || substr(id, 19, 1) || substr(id, 24, 1) = '----'
   AND length(replace(id, '-', '')) = 32 AND unhex(replace(id, '-', '')) IS NOT NULL;

UPDATE configuration SET current_session_id = unhex(replace(current_session_id, '-', ''))
 WHERE typeof(current_session_id) = 'text' AND length(current_session_id) = 36 AND lower(current_session_id) = current_session_id
   AND substr(current_session_id, 9, 1) || substr(current_session_id, 14, 1) || substr(current_session_id, 19, 1) || substr(current_session_id, 24, 1) = '----'
   AND length(replace(current_session_id, '-', '')) = 32 AND unhex(replace(current_session_id, '-', '')) IS NOT NULL;

-- Fewer index entries per write on the cascade's hot tables.
--
-- The timeline is read per message, in order (`GET /v1/messages/{id}`, the webhook's
-- cascade), never by event id alone: (message_id, id) becomes the primary key, where a
-- key on id alone gave every event a second index entry. Ids still come from the
-- sequence, so events keep their order.
ALTER TABLE message_events DROP CONSTRAINT message_events_pkey;
DROP INDEX message_events_message;
ALTER TABLE message_events ADD PRIMARY KEY (message_id, id);

-- An attempt is updated three or four times in a few seconds (sending, the provider's
-- answer, its receipts). Room left on each page lets the updates that change no indexed
-- column stay on the page without new index entries (HOT updates).
ALTER TABLE attempts SET (fillfactor = 70);

-- The recovery sweep re-publishes cancels that were recorded but may never have reached
-- the engine (the publish after the record failed): it looks them up by time.
CREATE INDEX message_events_cancel_requested ON message_events (at)
    WHERE kind = 'cancel_requested';

-- The server drops this session within about 25 s of losing the relay
-- (e.g. a network partition, where no FIN or RST ever arrives), which frees
-- the source's advisory lock for a standby; the OS default would be hours.
SET tcp_keepalives_idle = 10;
SET tcp_keepalives_interval = 5;
SET tcp_keepalives_count = 3;

token: {{ TOKEN | rot13 }}

user: demo
token: {{ TOKEN }}
password: {{ DB_PASSWORD | trim }}

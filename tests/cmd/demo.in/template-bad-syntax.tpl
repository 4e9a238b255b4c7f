token: {{ TOKEN

user: demo
token: {{ TOKNE }}

module logos.co/reliablechannel

go 1.19
